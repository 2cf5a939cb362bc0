# Entry points of the single-node Kubernetes lab (see lab/README.md).
.PHONY: lab-up e2e lab-down

lab-up:
	lab/scripts/up.sh

e2e:
	lab/scripts/e2e.sh

lab-down:
	lab/scripts/down.sh
