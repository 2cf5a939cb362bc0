// Package keda declares KEDA's ScaledObject API (keda.sh/v1alpha1) as Go
// types, so that Shoal decodes ScaledObjects as strictly as the built-in
// kinds, and reasons about them, without depending on KEDA.
//
// Package lint decodes and checks these objects; package autoscale gives
// them KEDA's scaling semantics.
package keda
