package thumbnailer

import (
	"cmp"
	"fmt"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/service"
	"github.com/shoal-dev/shoal/shed"
)

// Bind registers the thumbnailer service's own settings on cs, each a
// flag and a variable, beside the service.Options every service shares.
func Bind(cs *config.Set, cfg *Config) {
	cs.Int64(&cfg.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", DefaultMaxBodyBytes, "largest accepted image upload")
	cs.Int(&cfg.MaxPixels, "max-pixels", "MAX_PIXELS", thumbnail.DefaultMaxPixels, "largest accepted width×height")
	cs.Int(&cfg.CacheBytes, "cache-bytes", "CACHE_BYTES", DefaultCacheBytes, "bound on the result cache (negative disables it)")
	cs.Duration(&cfg.MemoryWait, "memory-wait", "MEMORY_WAIT", shed.DefaultBudgetWait, "how long a request waits for memory before 503")
	cs.Duration(&cfg.WriteStall, "write-stall", "WRITE_STALL", DefaultWriteStall, "cut off a client that takes longer than this to accept each 64 KiB of its result (negative: only the server's 60s write timeout)")
}

// Add registers the thumbnailer's routes and metrics on svc, with svc's
// logger in place of cfg.Logger and, unless cfg sets one, svc's
// MEMORY_LIMIT as cfg.MemoryLimit, and its gRPC service, served on
// GRPC_PORT when that is set. Its route keeps the service's
// REQUEST_TIMEOUT: a thumbnail's work is bounded by the memory budgets
// and the caller's deadline, which arrives with the request.
//
// gRPC must take the uploads HTTP takes: with GRPC_PORT set, Add refuses
// a GRPC_MAX_RECV_MSG_SIZE below [API.MaxRecvMsgSize] (MAX_BODY_BYTES and
// 64 bytes; the kit's default is 4 MiB), naming the value to set. A
// larger one lets grpc-go read that much before Resize refuses the image.
func Add(svc *service.Service, cfg Config) error {
	cfg.Logger = svc.Logger
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = svc.Options.MemoryLimit
	}
	api, err := New(cfg, svc.Registry)
	if err != nil {
		return err
	}
	if svc.GRPCAddr() != nil {
		have, need := cmp.Or(svc.Options.GRPCMaxRecvMsgSize, grpcserver.DefaultMaxRecvMsgSize), api.MaxRecvMsgSize()
		if have < need {
			return fmt.Errorf("thumbnailer: GRPC_MAX_RECV_MSG_SIZE %d is below MAX_BODY_BYTES %d and %d bytes for the message's other fields, so gRPC would refuse uploads HTTP takes: set GRPC_MAX_RECV_MSG_SIZE=%d",
				have, api.cfg.MaxBodyBytes, requestOverhead, need)
		}
	}
	api.Register(svc)
	api.RegisterGRPC(svc.GRPCServer())
	return nil
}
