// Package demo implements `shoal demo`: the reference system (gallery in
// front of the thumbnailer) on loopback in one process, on embedded
// defaults, with sessions in memory.
package demo
