package assess

import (
	"strings"

	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/image"
)

// Streaming returns o.Image set to read compressed and registry layers in
// one streaming pass each (image.Options.Select): the files the catalogers
// read are kept, every file the secret scanner reads is scanned as it
// streams past (o.Secrets), and each layer's results (file table, kept
// files, secret findings) are cached by diffID under the cache quota, so a
// layer shared by many images (the base) is read once. No decompressed
// layer is written to disk. Run must then get the same o.Secrets.
func (o Options) Streaming() (image.Options, error) {
	key, err := o.Secrets.Key()
	if err != nil {
		return image.Options{}, err
	}
	insp, err := o.Secrets.Inspector()
	if err != nil {
		return image.Options{}, err
	}
	iopts := o.Image
	iopts.Select, iopts.Inspect = catalog.Selection(o.Catalog.Catalogers), insp
	iopts.SelectKey = catalog.SelectionKey
	if o.Catalog.Catalogers != nil {
		var names []string
		for _, c := range o.Catalog.Catalogers {
			names = append(names, c.Name())
		}
		iopts.SelectKey += "." + strings.Join(names, ".")
	}
	iopts.SelectKey += "+" + key
	return iopts, nil
}
