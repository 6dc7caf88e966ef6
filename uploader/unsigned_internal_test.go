package uploader

import "testing"

func TestUnsignedPayload(t *testing.T) {
	tests := []struct {
		endpoint string
		want     bool
	}{
		{"", false}, // AWS: the SDK's default (a trailing checksum over HTTPS)
		{"https://s3.example.com", true},
		{"https://abc.r2.cloudflarestorage.com", true},
		{"http://127.0.0.1:9000", true},
		{"http://[::1]:9000", true},
		{"http://localhost:9000", true},
		{"http://minio.internal:9000", false}, // plain HTTP over a network: keep the body signed
		{"http://10.0.0.5:9000", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			if got := unsignedPayload(tt.endpoint); got != tt.want {
				t.Errorf("unsignedPayload(%q): got %v, want %v", tt.endpoint, got, tt.want)
			}
		})
	}
}
