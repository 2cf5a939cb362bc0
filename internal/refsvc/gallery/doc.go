// Package gallery is the HTTP API of the gallery reference service, the
// edge of the reference system: sign-in with stateless sessions, thumbnails
// made by the thumbnailer, and each user's history of them.
//
// Every piece of user state lives in the session store (Redis in a
// cluster), so any gallery replica can serve any request.
package gallery
