// Module metrics-server pins the sigs.k8s.io/metrics-server release that the lab builds; build-only.
module github.com/shoal-dev/shoal/lab/addons/metrics-server

go 1.26.0

require sigs.k8s.io/metrics-server v0.8.0 // indirect
