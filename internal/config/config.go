// Package config reads assetctl.yaml strictly (unknown keys and bad values
// are errors that name the file and line) and layers it, with ASSETCTL_*
// environment variables, beneath command-line flags:
//
//	flag > environment > config file > built-in default
//
// Each command owns one section of the file (build:, deploy:, dev:, serve:).
// A section's scalar and list fields carry a `flag:"name"` tag naming the
// command-line flag they feed; Apply copies them into the flag set when the
// user did not set that flag or its environment variable. Structured
// settings that have no flag (cache-control rules, say) stay in the section
// for the command to read directly.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
	"github.com/spf13/pflag"
)

// FileName is the config file looked for at the site root.
const FileName = "assetctl.yaml"

// EnvPrefix prefixes the environment variable of every flag:
// --base-url is ASSETCTL_BASE_URL.
const EnvPrefix = "ASSETCTL_"

// File is the whole of assetctl.yaml.
type File struct {
	Build  Build  `yaml:"build"`
	Deploy Deploy `yaml:"deploy"`
	Dev    Dev    `yaml:"dev"`
	Serve  Serve  `yaml:"serve"`
	Shards Shards `yaml:"shards"`

	// Path is where the file was read from; empty when there was none.
	Path string `yaml:"-"`
}

// Load reads the config file at path. If path is empty it looks for
// FileName in dir and returns an empty File when there is none; an explicit
// path that does not exist is an error.
func Load(path, dir string) (*File, error) {
	explicit := path != ""
	if !explicit {
		path = dir + string(os.PathSeparator) + FileName
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return &File{}, nil
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	f, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Parse decodes config bytes; name is used in error messages.
func Parse(name string, data []byte) (f *File, err error) {
	// goccy/go-yaml v1.19.2 panics on some malformed input (a tag on a
	// block sequence, found by FuzzParseServe): a bad file is an error.
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, &Error{Path: name, Msg: fmt.Sprintf("not valid YAML (the parser failed: %v): check the file's syntax", r)}
		}
	}()
	f = &File{}
	if err := yaml.UnmarshalWithOptions(data, f, yaml.Strict()); err != nil {
		return nil, &Error{Path: name, Msg: yaml.FormatError(err, false, true)}
	}
	f.Path = name
	if err := f.Serve.validate(); err != nil {
		return nil, &Error{Path: name + lineOf(data, err), Msg: err.Error()}
	}
	return f, nil
}

// lineOf is ":LINE" of the value a *fieldError points at, or "" when it
// cannot be found.
func lineOf(data []byte, err error) string {
	var fe *fieldError
	if !errors.As(err, &fe) {
		return ""
	}
	file, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		return ""
	}
	path, perr := yaml.PathString("$." + fe.Path)
	if perr != nil {
		return ""
	}
	node, perr := path.FilterFile(file)
	if perr != nil || node == nil || node.GetToken() == nil {
		return ""
	}
	return fmt.Sprintf(":%d", node.GetToken().Position.Line)
}

// Error is a config file that could not be decoded or validated.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config %s: %s", e.Path, e.Msg)
}

// EnvName is the environment variable that sets flag name.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Apply fills every flag in fs that was not given on the command line: from
// its environment variable (looked up with getenv) if set, otherwise from
// the field of section tagged `flag:"name"` if that field is set. section
// is a pointer to a struct, or nil. configPath names the file in errors.
func Apply(fs *pflag.FlagSet, section any, configPath string, getenv func(string) string) error {
	fromFile := map[string][]string{}
	if section != nil {
		collect(reflect.ValueOf(section), fromFile)
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		if v := getenv(EnvName(fl.Name)); v != "" {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", EnvName(fl.Name), v, err))
			}
			return
		}
		for _, v := range fromFile[fl.Name] {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config %s: %s: %q: %w", configPath, fl.Name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// collect gathers the set, flag-tagged fields of a section struct as the
// strings their flags would accept.
func collect(v reflect.Value, out map[string][]string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	t := v.Type()
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("flag")
		if name == "" {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		} else if fv.IsZero() {
			continue
		}
		if fv.Kind() == reflect.Slice {
			for j := range fv.Len() {
				out[name] = append(out[name], fmt.Sprint(fv.Index(j).Interface()))
			}
			continue
		}
		out[name] = append(out[name], fmt.Sprint(fv.Interface()))
	}
}
