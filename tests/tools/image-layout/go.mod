// image-layout: writes the operator's OCI image layout with go-containerregistry (see main.go),
// built by tests/tools/install-image-layout.
module connect-email-operator/tests/tools/image-layout

go 1.25.5

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
