package lint

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// A kustomize build holds about two kilobytes per YAML node it reads,
// aliases expanded (kyaml's DeAnchor expands every one): 500,000 nodes,
// about 10 MB of manifests, take a gigabyte. So the nodes a build reads are
// counted, and aliases may multiply a file's nodes by at most aliasFactor
// (or reach minAliasBudget nodes): manifests rarely use aliases and reuse
// a block a few times when they do, where a "billion laughs" file of a
// few hundred bytes multiplies its nodes by nine per level.
const (
	maxBuildNodes  = 500000
	aliasFactor    = 10
	minAliasBudget = 100000
)

// chargeNodes counts the YAML nodes of data, aliases expanded, against
// left, the nodes the builds of one Lint call may still read. Data that is
// not YAML is not counted: kustomize refuses it itself, or it is a
// generator's file, read as text.
func chargeNodes(data []byte, left *int) error {
	dec := kyaml.NewDecoder(bytes.NewReader(data))
	var nodes []*kyaml.Node
	parsed := 0
	for {
		n := new(kyaml.Node)
		if err := dec.Decode(n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil
		}
		parsed += countNodes(n)
		nodes = append(nodes, n)
	}
	if parsed > *left {
		return errTooManyNodes
	}
	budget := max(aliasFactor*parsed, minAliasBudget)
	sizes := map[*kyaml.Node]int{}
	total := 0
	for _, n := range nodes {
		size, err := expandedSize(n, sizes, budget)
		if err != nil {
			return err
		}
		if total += size; total > budget {
			return errAliasExpansion(budget)
		}
	}
	if *left -= total; *left < 0 {
		return errTooManyNodes
	}
	return nil
}

var errTooManyNodes = fmt.Errorf("the kustomizations read more than %d YAML nodes in all; build them with kustomize and lint its output, or lint fewer at a time", maxBuildNodes)

func errAliasExpansion(budget int) error {
	return fmt.Errorf("its YAML aliases expand to more than %d nodes; write the repeated parts out", budget)
}

// countNodes counts n's tree without following aliases.
func countNodes(n *kyaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// expandedSize is the size of n's tree with every alias replaced by what
// it names, as kustomize expands it; sizes keeps each anchored node's, so
// the work is linear in the file. It stops past budget. A size of -1
// marks a node being counted: an alias to it refers to itself.
func expandedSize(n *kyaml.Node, sizes map[*kyaml.Node]int, budget int) (int, error) {
	if n.Kind == kyaml.AliasNode {
		if n.Alias == nil {
			return 1, nil
		}
		if s, ok := sizes[n.Alias]; ok {
			if s < 0 {
				return 0, errors.New("a YAML alias refers to the node that holds it")
			}
			return s, nil
		}
		return expandedSize(n.Alias, sizes, budget)
	}
	anchored := n.Anchor != ""
	if anchored {
		sizes[n] = -1
	}
	size := 1
	for _, k := range n.Content {
		s, err := expandedSize(k, sizes, budget)
		if err != nil {
			return 0, err
		}
		if size += s; size > budget {
			return 0, errAliasExpansion(budget)
		}
	}
	if anchored {
		sizes[n] = size
	}
	return size, nil
}
