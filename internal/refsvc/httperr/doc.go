// Package httperr writes the reference services' error responses: a status
// code and a JSON body {"error": "..."}, the one shape every route of the
// gallery and the thumbnailer answers a failure with. [Parse] reads that
// shape back from another service's answer, safe to pass on.
package httperr
