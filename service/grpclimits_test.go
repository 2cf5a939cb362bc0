package service

import "testing"

func TestGRPCLimits(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name  string
		o     Options
		limit int64
		recv  int64
		conns int
	}{
		{"no limit known: grpcserver's defaults", Options{}, 0, 0, 0},
		{"256 MiB, 4 MiB messages", Options{}, 256 * mib, 32 * mib, 512},
		{"256 MiB, 10 MiB messages", Options{GRPCMaxRecvMsgSize: 10*mib + 64}, 256 * mib, 32 * mib, 512},
		{"64 MiB, 10 MiB messages: two messages at least", Options{GRPCMaxRecvMsgSize: 10*mib + 64}, 64 * mib, 2 * (10*mib + 64 + 128<<10), 128},
		{"16 MiB: 64 connections at least", Options{}, 16 * mib, 2 * (4*mib + 128<<10), 64},
		{"set values win", Options{GRPCRecvBudget: 100, GRPCMaxConns: -1}, 256 * mib, 100, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recv, conns := grpcLimits(tt.o, tt.limit)
			if recv != tt.recv || conns != tt.conns {
				t.Fatalf("grpcLimits = %d, %d; want %d, %d", recv, conns, tt.recv, tt.conns)
			}
		})
	}
}
