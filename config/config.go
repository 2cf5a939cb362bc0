package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Set is a flag set whose flags also read the environment.
type Set struct {
	fs      *flag.FlagSet
	lookup  func(string) (string, bool)
	errs    []error
	secrets []secret
}

// secret is a Secret binding whose variable Parse applies.
type secret struct {
	p         *string
	name, env string
}

// New returns a Set registering flags on fs and reading variables through
// lookup (os.LookupEnv in a main, a map in tests).
func New(fs *flag.FlagSet, lookup func(string) (string, bool)) *Set {
	return &Set{fs: fs, lookup: lookup}
}

func (s *Set) env(name string) (string, bool) {
	if name == "" || s.lookup == nil {
		return "", false
	}
	v, ok := s.lookup(name)
	return v, ok && v != ""
}

func (s *Set) usage(env, usage string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// String binds a string flag and variable to p.
func (s *Set) String(p *string, name, env, def, usage string) {
	if v, ok := s.env(env); ok {
		def = v
	}
	s.fs.StringVar(p, name, def, s.usage(env, usage))
}

// Secret binds a string flag and variable to p, as String does, except
// that the variable's value is not the flag's default: usage (-h, or a
// mistyped flag) prints defaults, and a pod's log would then hold the
// secret. Parse applies the variable when the flag is not given. Prefer
// the variable: a flag's value shows in the process list.
func (s *Set) Secret(p *string, name, env, usage string) {
	s.fs.StringVar(p, name, "", s.usage(env, usage))
	s.secrets = append(s.secrets, secret{p: p, name: name, env: env})
}

// Int binds an integer flag and variable to p.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	if v, ok := s.env(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("config: %s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, s.usage(env, usage))
}

// Int64 binds a 64-bit integer flag and variable to p.
func (s *Set) Int64(p *int64, name, env string, def int64, usage string) {
	if v, ok := s.env(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("config: %s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.Int64Var(p, name, def, s.usage(env, usage))
}

// Duration binds a duration flag and variable (such as "5s") to p.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := s.env(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("config: %s=%q is not a duration such as 5s", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, s.usage(env, usage))
}

// Bool binds a boolean flag and variable to p.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	if v, ok := s.env(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("config: %s=%q is not a boolean", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, s.usage(env, usage))
}

// Float64 binds a floating-point flag and variable (such as "0.25") to p.
func (s *Set) Float64(p *float64, name, env string, def float64, usage string) {
	if v, ok := s.env(env); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("config: %s=%q is not a number", env, v))
		} else {
			def = f
		}
	}
	s.fs.Float64Var(p, name, def, s.usage(env, usage))
}

// Parse reports malformed environment values, then parses args. For -h or
// -help it prints the usage to the flag set's output and returns an error
// wrapping flag.ErrHelp, which a main answers by exiting 0.
func (s *Set) Parse(args []string) error {
	if err := errors.Join(s.errs...); err != nil {
		return err
	}
	if err := s.fs.Parse(args); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, sec := range s.secrets {
		if v, ok := s.env(sec.env); ok && !given[sec.name] {
			*sec.p = v
		}
	}
	return nil
}
