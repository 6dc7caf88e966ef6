package uploader_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/assetctl/assetctl/uploader"
)

// A deploy invalidates the pages it changed in a CloudFront distribution
// and purges them from a Varnish edge, then waits for CloudFront.
func ExampleCombine() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx) // env, shared profile, SSO, web identity
	if err != nil {
		log.Fatal(err)
	}
	cf, err := uploader.NewCloudFront(cfg, uploader.CloudFrontOptions{
		DistributionIDs: []string{"E2QWRUHAPOMQZL"},
		MaxPaths:        50, // past 50 paths, one wildcard
	})
	if err != nil {
		log.Fatal(err)
	}
	edge, err := uploader.NewPurge("http://127.0.0.1:6081", uploader.PurgeOptions{
		Header: http.Header{"Fastly-Key": {"..."}}, // if the edge wants a key
	})
	if err != nil {
		log.Fatal(err)
	}
	inv := uploader.Combine(cf, edge)
	id, err := inv.Invalidate(ctx, []string{"/docs/index.html", "/docs/", "/docs"}, "deploy-5d0c7e2a91b4f3c8")
	if err != nil {
		log.Fatal(err)
	}
	if err := inv.Wait(ctx, id); err != nil {
		log.Fatal(err)
	}
	fmt.Println("invalidated:", id)
}
