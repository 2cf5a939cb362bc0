// Package httperr writes the reference services' error responses: a status
// code and a JSON body {"error": "..."}, the one shape every route of the
// gallery and the thumbnailer answers a failure with.
package httperr
