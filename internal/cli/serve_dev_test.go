package cli

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// assetctl serve --dev: the origin builds the site with the dev pipeline,
// serves the assets itself, and tells open pages to reload after a
// template or a source file changes, once it serves the new version.
func TestServeDev(t *testing.T) {
	data := newServeData(t)
	site := copyTree(t, exampleSite)
	s := startServe(t, site, append(data.args(), "--dev", site)...)
	putDoc(t, s.URL, "products", "p1", `{"name":"Oak Lamp","price":"€12.00"}`)

	appRE := regexp.MustCompile(`src="(` + regexp.QuoteMeta(s.URL) + `/__dev/js/app\.[0-9a-f]{8}\.js)"`)
	code, _, body := get(t, s.URL+"/products/p1")
	m := appRE.FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.Contains(body, `new EventSource("/__serve/events")`) {
		t.Fatalf("GET /products/p1 in --dev: got %d\n%s\nwant the entry on %s/__dev/ and the reload script", code, body, s.URL)
	}
	if code, h, js := get(t, m[1]); code != 200 || !strings.Contains(h.Get("Content-Type"), "javascript") || len(js) == 0 {
		t.Fatalf("GET %s: got %d %q, want the built script", m[1], code, h.Get("Content-Type"))
	}

	resp, err := http.Get(s.URL + "/__serve/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitReload := func(what string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: the event stream ended", what)
				}
				if l == "data: reload" {
					return
				}
			case <-timeout:
				t.Fatalf("%s: no reload event within 30s\n%s", what, s.stdout)
			}
		}
	}
	<-lines // ": connected"

	editFile(t, filepath.Join(site, "templates", "product.html"), "<h1>{{.Data.name}}</h1>", "<h1>{{.Data.name}} (edited)</h1>")
	waitReload("template edit")
	if _, _, body := get(t, s.URL+"/products/p1"); !strings.Contains(body, "<h1>Oak Lamp (edited)</h1>") {
		t.Errorf("after the template edit: got\n%s\nwant the edited heading", body)
	}

	f, err := os.OpenFile(filepath.Join(site, "js", "app.ts"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("\nexport const edited = true;\n")
	f.Close()
	waitReload("script edit")
	_, _, body = get(t, s.URL+"/products/p1")
	if m2 := appRE.FindStringSubmatch(body); m2 == nil || m2[1] == m[1] {
		t.Errorf("after the script edit: entry URL %v, want a new one (was %s)", m2, m[1])
	}
}
