// Module prometheus-adapter pins the sigs.k8s.io/prometheus-adapter release that the lab builds; build-only.
module github.com/shoal-dev/shoal/lab/addons/prometheus-adapter

go 1.26.0

require sigs.k8s.io/prometheus-adapter v0.12.0 // indirect
