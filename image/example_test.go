package image_test

import (
	"fmt"
	"log"

	"github.com/shoal-dev/shoal/image"
)

func ExampleBuilder_FromBinary() {
	b := &image.Builder{GOARCH: "amd64"}
	img, err := b.FromBinary("thumbnailer", []byte("\x7fELF..."))
	if err != nil {
		log.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cf.Config.Entrypoint, cf.Config.User, cf.OS+"/"+cf.Architecture)
	// Output: [/ko-app/thumbnailer] 65532:65532 linux/amd64
}
