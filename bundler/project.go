package bundler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/evanw/esbuild/pkg/api"
	"github.com/joho/godotenv"
)

// project is what a Vite-style project says about how its code is
// compiled, read once per build from the site root: the .env files, the
// tsconfig that covers the sources and the JSX runtime of its framework.
type project struct {
	define   map[string]string // esbuild defines: process.env.NODE_ENV, import.meta.env.*
	tsconfig string            // absolute path of the tsconfig esbuild should use; "" lets esbuild look
	jsx      api.JSX
	jsxSrc   string // jsxImportSource
	wholeEnv bool   // import.meta.env itself is defined (see viteDefines)
}

// key identifies the settings, so a change (an edited .env) starts a new
// esbuild context instead of reusing the old one.
func (p *project) key() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p.define)) {
		fmt.Fprintf(&b, "%s=%s\x00", k, p.define[k])
	}
	fmt.Fprintf(&b, "%s\x00%d\x00%s", p.tsconfig, p.jsx, p.jsxSrc)
	return b.String()
}

// envFiles are the .env files Vite reads for a mode, lowest priority first
// (https://vite.dev/guide/env-and-mode: mode-specific beats generic, .local
// beats shared).
func envFiles(mode string) []string {
	return []string{".env", ".env.local", ".env." + mode, ".env." + mode + ".local"}
}

// loadProject reads the project settings from the site root.
func (b *Builder) loadProject(entries []string) (*project, error) {
	p := &project{}
	env, err := b.loadEnv()
	if err != nil {
		return nil, err
	}
	p.wholeEnv = b.envObject.Load()
	p.define = viteDefines(b.mode, env, p.wholeEnv)
	p.tsconfig, err = pickTsconfig(b.site, entries)
	if err != nil {
		return nil, err
	}
	if !tsconfigSetsJSX(p.tsconfig, b.site) {
		p.jsx, p.jsxSrc = jsxFromPackage(b.site)
	}
	return p, nil
}

// loadEnv reads the VITE_* variables of the .env files for the mode, then
// lets the process environment (Options.Environ) override them, as Vite does.
func (b *Builder) loadEnv() (map[string]string, error) {
	env := map[string]string{}
	for _, name := range envFiles(b.mode) {
		data, err := os.ReadFile(filepath.Join(b.site, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		vars, err := godotenv.UnmarshalBytes(data)
		if err != nil {
			return nil, &BuildError{Messages: []Message{{File: name, Line: envErrorLine(data, err),
				Text: fmt.Sprintf("invalid .env file: %v: write KEY=value lines", err)}}}
		}
		for k := range vars {
			if !envName.MatchString(k) {
				return nil, &BuildError{Messages: []Message{{File: name, Line: lineOf(data, k),
					Text: fmt.Sprintf("invalid .env file: %q is not a variable name: write KEY=value lines", k)}}}
			}
		}
		maps.Copy(env, vars)
	}
	for _, kv := range b.opts.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	return env, nil
}

// envPrefix marks the variables exposed to client code; others may hold
// secrets and never reach a bundle.
const envPrefix = "VITE_"

// envName is what a shell (and Vite's dotenv) accepts as a variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// lineOf is the 1-based line of the first line that starts with key, or 0.
func lineOf(data []byte, key string) int {
	for i, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if strings.HasPrefix(l, key) && (key != "" || strings.HasPrefix(l, "=")) {
			return i + 1
		}
	}
	return 0
}

// envErrorLine finds the line godotenv complained about from the text it
// quotes after "near", or 0.
func envErrorLine(data []byte, err error) int {
	msg := err.Error()
	i := strings.LastIndex(msg, "near ")
	if i < 0 {
		return 0
	}
	snippet, uerr := strconv.Unquote(msg[i+len("near "):])
	if uerr != nil {
		snippet = strings.Trim(msg[i+len("near "):], `"`)
	}
	snippet, _, _ = strings.Cut(snippet, "\n")
	j := bytes.Index(data, []byte(snippet))
	if snippet == "" || j < 0 {
		return 0
	}
	return bytes.Count(data[:j], []byte{'\n'}) + 1
}

// viteDefines are the compile-time constants Vite gives client code.
// The whole import.meta.env object is defined only when code uses it bare
// (whole reports that): an object-valued define, even unused, changes
// esbuild's minified names and so every bundle's hash.
func viteDefines(mode string, env map[string]string, whole bool) map[string]string {
	dev := mode == ModeDevelopment
	nodeEnv := "production"
	if dev {
		nodeEnv = "development"
	}
	meta := map[string]any{"MODE": mode, "DEV": dev, "PROD": !dev, "BASE_URL": "/", "SSR": false}
	for k, v := range env {
		if strings.HasPrefix(k, envPrefix) {
			meta[k] = v
		}
	}
	d := map[string]string{"process.env.NODE_ENV": strconv.Quote(nodeEnv), "import.meta.hot": "undefined"}
	for k, v := range meta {
		js, _ := json.Marshal(v)
		d["import.meta.env."+k] = string(js)
	}
	if whole {
		obj, _ := json.Marshal(meta) // encoding/json sorts keys: deterministic output
		d["import.meta.env"] = string(obj)
	}
	return d
}

// pickTsconfig returns the tsconfig that covers the entry points when the
// root tsconfig.json is a "solution" file (files: [], references: [...]),
// as in Vite's TypeScript starters: esbuild reads only the nearest
// tsconfig.json and would miss the JSX and decorator settings of
// tsconfig.app.json. Otherwise it returns "" and esbuild finds the
// tsconfig of each file itself.
func pickTsconfig(site string, entries []string) (string, error) {
	root, err := readJSONC(filepath.Join(site, "tsconfig.json"))
	if err != nil || root == nil {
		return "", err
	}
	var sol struct {
		References []struct {
			Path string `json:"path"`
		} `json:"references"`
	}
	if json.Unmarshal(root, &sol) != nil || len(sol.References) == 0 {
		return "", nil
	}
	for _, r := range sol.References {
		p := filepath.Join(site, filepath.FromSlash(r.Path))
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			p = filepath.Join(p, "tsconfig.json")
		}
		data, err := readJSONC(p)
		if err != nil {
			return "", err
		}
		var cfg struct {
			Include []string `json:"include"`
			Files   []string `json:"files"`
		}
		if data == nil || json.Unmarshal(data, &cfg) != nil {
			continue
		}
		dir, _ := filepath.Rel(site, filepath.Dir(p))
		for _, e := range entries {
			if covers(filepath.ToSlash(dir), cfg.Include, cfg.Files, e) {
				return p, nil
			}
		}
	}
	return "", nil
}

// covers reports whether a tsconfig in dir (site-relative) with these
// include and files lists takes in source file rel.
func covers(dir string, include, files []string, rel string) bool {
	for _, f := range files {
		if path.Join(dir, f) == rel {
			return true
		}
	}
	for _, inc := range include {
		pat := path.Join(dir, inc)
		if ok, _ := doublestar.Match(pat, rel); ok {
			return true
		}
		if ok, _ := doublestar.Match(pat+"/**", rel); ok {
			return true
		}
	}
	return false
}

// tsconfigSetsJSX reports whether the tsconfig esbuild will use for the
// root's files says how to compile JSX.
func tsconfigSetsJSX(tsconfig, site string) bool {
	if tsconfig == "" {
		tsconfig = filepath.Join(site, "tsconfig.json")
	}
	data, err := readJSONC(tsconfig)
	if err != nil || data == nil {
		return false
	}
	var cfg struct {
		CompilerOptions struct {
			JSX string `json:"jsx"`
		} `json:"compilerOptions"`
	}
	return json.Unmarshal(data, &cfg) == nil && cfg.CompilerOptions.JSX != ""
}

// jsxFromPackage picks the JSX runtime Vite's framework plugins use when
// package.json depends on the framework: Preact's or React's automatic
// runtime. Without either, esbuild's default (React.createElement) stays.
func jsxFromPackage(site string) (api.JSX, string) {
	data, err := os.ReadFile(filepath.Join(site, "package.json"))
	if err != nil {
		return api.JSXTransform, ""
	}
	var pkg struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if json.Unmarshal(data, &pkg) != nil {
		return api.JSXTransform, ""
	}
	has := func(name string) bool {
		_, a := pkg.Dependencies[name]
		_, b := pkg.DevDependencies[name]
		return a || b
	}
	switch {
	case has("preact"):
		return api.JSXAutomatic, "preact"
	case has("react"):
		return api.JSXAutomatic, "react"
	}
	return api.JSXTransform, ""
}

// readJSONC reads a JSON file that may hold comments and trailing commas
// (tsconfig.json does) as plain JSON; nil when the file does not exist.
func readJSONC(p string) ([]byte, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(p), err)
	}
	return stripJSONC(data), nil
}

// stripJSONC blanks out comments and drops trailing commas, leaving
// strings untouched.
func stripJSONC(src []byte) []byte {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			out = append(out, src[i:j]...)
			i = j - 1
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i--
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return out
			}
			i += end + 3
		case c == ']' || c == '}':
			k := len(out) - 1
			for k >= 0 && (out[k] == ' ' || out[k] == '\t' || out[k] == '\n' || out[k] == '\r') {
				k--
			}
			if k >= 0 && out[k] == ',' {
				out = append(out[:k], out[k+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}
