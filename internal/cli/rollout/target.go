package rollout

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrTarget marks a command line that does not name a deployment.
var ErrTarget = errors.New("want deployment/NAME")

// parseTarget reads kubectl's two forms, "deployment/NAME" and
// "deployment NAME", and returns the deployment's name.
func parseTarget(args []string) (string, error) {
	var kind, name string
	switch len(args) {
	case 1:
		var ok bool
		kind, name, ok = strings.Cut(args[0], "/")
		if !ok {
			return "", fmt.Errorf("%w, got %q", ErrTarget, args[0])
		}
	case 2:
		kind, name = args[0], args[1]
	case 0:
		return "", fmt.Errorf("%w, got no arguments", ErrTarget)
	default:
		return "", fmt.Errorf("%w, got %d arguments", ErrTarget, len(args))
	}
	switch strings.ToLower(kind) {
	case "deployment", "deployments", "deploy", "deployment.apps", "deployments.apps":
	default:
		return "", fmt.Errorf("%w: only deployments roll out here, got %q", ErrTarget, kind+"/"+name)
	}
	if name == "" {
		return "", fmt.Errorf("%w: the name is empty", ErrTarget)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("%w: name %q: %s", ErrTarget, name, errs[0])
	}
	return name, nil
}
