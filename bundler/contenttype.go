package bundler

import (
	"path"
	"strings"
)

// contentTypes maps extensions to media types. It is fixed here rather than
// read from the system's mime.types so a build yields the same manifest on
// every machine.
var contentTypes = map[string]string{
	".html": "text/html", ".htm": "text/html",
	".css": "text/css",
	".js":  "text/javascript", ".mjs": "text/javascript", ".cjs": "text/javascript",
	".json": "application/json", ".map": "application/json",
	".webmanifest": "application/manifest+json",
	".xml":         "application/xml", ".rss": "application/rss+xml", ".atom": "application/atom+xml",
	".txt": "text/plain", ".md": "text/markdown", ".csv": "text/csv", ".ics": "text/calendar",
	".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
	".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff", ".jxl": "image/jxl",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
	".eot": "application/vnd.ms-fontobject",
	".mp4": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg", ".mov": "video/quicktime",
	".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".wav": "audio/wav",
	".m4a": "audio/mp4", ".flac": "audio/flac", ".opus": "audio/opus",
	".vtt": "text/vtt",
	".pdf": "application/pdf", ".wasm": "application/wasm", ".zip": "application/zip",
	".gz": "application/gzip", ".tar": "application/x-tar",
}

// textTypes are served with charset=utf-8.
var textTypes = map[string]bool{
	"application/json": true, "application/manifest+json": true, "application/xml": true,
	"application/rss+xml": true, "application/atom+xml": true, "image/svg+xml": true,
}

// contentType returns the media type to serve a file with, from its name.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	ct, ok := contentTypes[ext]
	if !ok {
		return "application/octet-stream"
	}
	if strings.HasPrefix(ct, "text/") || textTypes[ct] {
		return ct + "; charset=utf-8"
	}
	return ct
}
