# Entry points of the single-node Kubernetes lab (see lab/README.md).
.PHONY: lab-up e2e lab-down chaos measure-dependencies

lab-up:
	lab/scripts/up.sh

e2e:
	lab/scripts/e2e.sh

lab-down:
	lab/scripts/down.sh

# The adversarial suite alone (scripts/test.sh runs it after the unit tests).
chaos:
	go test -count=1 -timeout 15m ./test/chaos/

# Both readiness policies for a shared Redis, measured behind the Ingress
# (minutes; the figures in docs/dependencies.md).
measure-dependencies:
	go test -count=1 -timeout 10m -run TestRedisReadinessPolicies -v ./test/chaos/ -args -measure
