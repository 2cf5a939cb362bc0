package grpcclient

// LoggerKey is the resolver.State attribute carrying the policies' logger.
var LoggerKey = loggerKey{}

// OutcomeOf judges a finished call.
var OutcomeOf = outcomeOf
