package grpcserver

// ShareOf is what a call takes of the receive budget, metadata aside,
// under a MaxRecvMsgSize of maxMsg.
func ShareOf(maxMsg int) int64 {
	return Config{MaxRecvMsgSize: maxMsg}.withDefaults().callShare()
}

// CallCost is what a call in flight counts for against a receive budget.
const CallCost = callCost
