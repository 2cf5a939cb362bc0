// Package config binds a service's command-line flags to environment
// variables of the same meaning.
//
// Kubernetes manifests configure containers through env, people at a shell
// through flags; each setting answers to both. A flag given on the command
// line wins over the environment, which wins over the built-in default. A
// malformed environment value is an error naming the variable, never a
// silent fallback to the default.
package config
