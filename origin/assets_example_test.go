package origin_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/origin"
)

// An entry's tags, in the order Vite's backend guide recommends, with the
// request's nonce.
func ExampleAssets_EntryTags() {
	m, err := manifest.Load("testdata") // a build output directory
	if err != nil {
		panic(err)
	}
	a, err := origin.NewAssets(m, "https://cdn.example.com/site/")
	if err != nil {
		panic(err)
	}
	css, _ := a.URL("css/site.css")
	fmt.Println(css)
	tags, err := a.EntryTags("js/admin.ts", origin.TagOptions{Nonce: "cmFuZG9t"})
	if err != nil {
		panic(err)
	}
	for _, tag := range strings.SplitAfter(string(tags), ">") {
		if i := strings.Index(tag, " integrity="); i > 0 { // shortened for the example
			tag = tag[:i] + " ..." + tag[strings.Index(tag, ` crossorigin`):]
		}
		fmt.Fprintln(os.Stdout, tag)
	}
	// Output:
	// https://cdn.example.com/site/css/site.77777777.css
	// <link rel="stylesheet" href="https://cdn.example.com/site/js/app.dddddddd.css" ... crossorigin="anonymous" nonce="cmFuZG9t">
	// <link rel="stylesheet" href="https://cdn.example.com/site/js/shared.eeeeeeee.css" ... crossorigin="anonymous" nonce="cmFuZG9t">
	// <script type="module" src="https://cdn.example.com/site/js/admin.22222222.js" ... crossorigin="anonymous" nonce="cmFuZG9t">
	// </script>
	// <link rel="modulepreload" href="https://cdn.example.com/site/js/util.bbbbbbbb.js" ... crossorigin="anonymous" nonce="cmFuZG9t">
	// <link rel="modulepreload" href="https://cdn.example.com/site/js/shared.aaaaaaaa.js" ... crossorigin="anonymous" nonce="cmFuZG9t">
	//
}
