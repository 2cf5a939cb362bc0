#!/usr/bin/env bash
# Creates the lab's certificates, keys, tokens and kubeconfigs with openssl,
# once: a cluster CA (serving and client certs), a front-proxy CA for the
# aggregation layer, the service-account key pair and one token per client.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir -p "$PKI_DIR"
cd "$PKI_DIR"
if [[ -f .done ]]; then
  exit 0
fi
umask 077

ca() { # ca NAME CN
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 3650 \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}
cert() { # cert NAME CA SUBJECT EXTKEYUSAGE [SANS]
  local name="$1" signer="$2" subj="$3" eku="$4" sans="${5:-}"
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$signer.crt" -CAkey "$signer.key" -CAcreateserial \
    -out "$name.crt" -days 3650 -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

ca ca shoal-lab-ca
ca front-proxy-ca shoal-lab-front-proxy-ca
cert apiserver ca "/CN=kube-apiserver" serverAuth \
  "IP:$NODE_IP,IP:$KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth,clientAuth "IP:$NODE_IP,DNS:$NODE_NAME"
# metrics-server and prometheus-adapter: the aggregator checks the name
# <service>.<namespace>.svc of the Service the APIService names.
cert aggregated ca "/CN=shoal-lab-aggregated" serverAuth \
  "IP:$NODE_IP,DNS:metrics-server.kube-system.svc,DNS:prometheus-adapter.kube-system.svc"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

# Static tokens: one identity per client, each with the groups that the
# default RBAC roles (and the Node authorizer) expect.
tok() { openssl rand -hex 16; }
: > tokens.csv
declare -A groups=(
  [admin]="system:masters"
  [system:kube-controller-manager]=""
  [system:kube-scheduler]=""
  ["system:node:$NODE_NAME"]="system:nodes"
  [system:kube-proxy]=""
  [shoal-lab:metrics-server]=""
  [shoal-lab:prometheus-adapter]=""
  [shoal-lab:prometheus]=""
)
uid=0
for user in "${!groups[@]}"; do
  uid=$((uid + 1))
  t="$(tok)"
  g="${groups[$user]}"
  if [[ -n "$g" ]]; then
    echo "$t,$user,u$uid,\"$g\"" >> tokens.csv
  else
    echo "$t,$user,u$uid" >> tokens.csv
  fi
  file="${user//[:]/-}"
  file="${file#system-}"
  file="${file#shoal-lab-}"
  [[ "$user" == system:node:* ]] && file=kubelet
  echo "$t" > "$file.token"
  cat > "$LAB_DIR/$file.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: shoal-lab
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority: $PKI_DIR/ca.crt
users:
- name: $user
  user:
    token: $t
contexts:
- name: shoal-lab
  context: {cluster: shoal-lab, user: "$user"}
current-context: shoal-lab
KC
done
chmod 600 "$LAB_DIR"/*.kubeconfig
touch .done
