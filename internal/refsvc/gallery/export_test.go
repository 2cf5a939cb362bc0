package gallery

// UploadBytesInUse returns the bytes of uploads a holds now.
func UploadBytesInUse(a *API) int64 { return a.uploads.InUse() }
