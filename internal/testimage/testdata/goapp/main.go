// Command bulwark-testapp is a real Go program built with old, vulnerable
// module versions so that scanners find them in its build info.
package main

import (
	"fmt"

	"golang.org/x/net/html"
	"golang.org/x/text/language"
	"gopkg.in/yaml.v2"
)

func main() {
	var v map[string]string
	_ = yaml.Unmarshal([]byte("a: b"), &v)
	fmt.Println(language.English, html.EscapeString("<x>"), v)
}
