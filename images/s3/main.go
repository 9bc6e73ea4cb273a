// Command s3 is the S3-compatible object store the kind suites install in place of a cloud one
// (k8s_tests/test_compute_logs_on_s3.py): gofakes3 over its in-memory backend, so the objects live
// as long as the pod. It creates the buckets it is told to at start, and with an access key ID set
// it refuses every request signed with another one. It does not verify signatures: it proves that
// a client was given the credentials from the Secret, not that they are secret.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	listen := flag.String("listen", ":9000", "address to serve S3 on")
	buckets := flag.String("buckets", os.Getenv("S3_BUCKETS"), "buckets to create at start, comma separated (env S3_BUCKETS)")
	accessKeyID := flag.String("access-key-id", os.Getenv("S3_ACCESS_KEY_ID"), "the one access key ID accepted; empty: any (env S3_ACCESS_KEY_ID)")
	flag.Parse()

	backend := s3mem.New()
	for _, bucket := range strings.Split(*buckets, ",") {
		if bucket = strings.TrimSpace(bucket); bucket == "" {
			continue
		}
		if err := backend.CreateBucket(bucket); err != nil {
			log.Fatalf("creating bucket %q: %v", bucket, err)
		}
		log.Printf("bucket %q created", bucket)
	}
	// Path-style addressing (http://host/bucket/key), as clients with an endpoint URL use.
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false), gofakes3.WithLogger(gofakes3.GlobalLog(gofakes3.LogErr, gofakes3.LogWarn)))

	mux := http.NewServeMux()
	// Outside S3's paths: a bucket cannot be named "-".
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.Handle("/", requireAccessKeyID(*accessKeyID, logRequests(faker.Server())))

	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	log.Printf("serving S3 on %s (buckets: %q; access key ID checked: %t)", *listen, *buckets, *accessKeyID != "")
	log.Fatal(server.ListenAndServe())
}

// requireAccessKeyID answers 403 AccessDenied to a request whose credential (the Authorization
// header, or the query of a presigned URL) names another access key ID.
func requireAccessKeyID(want string, next http.Handler) http.Handler {
	if want == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := credentialKeyID(r); got != want {
			log.Printf("refused %s %s: access key ID %q", r.Method, r.URL.Path, got)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>` +
				`<Error><Code>AccessDenied</Code><Message>unknown access key ID</Message></Error>`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// credentialKeyID reads the access key ID of a request: SigV4's "Credential=<key ID>/<scope>" (in
// the Authorization header or X-Amz-Credential) or SigV2's "AWS <key ID>:<signature>" (or
// AWSAccessKeyId).
func credentialKeyID(r *http.Request) string {
	query := r.URL.Query()
	header := r.Header.Get("Authorization")
	if _, credential, found := strings.Cut(header, "Credential="); found {
		keyID, _, _ := strings.Cut(credential, "/")
		return keyID
	}
	if v2, found := strings.CutPrefix(header, "AWS "); found {
		keyID, _, _ := strings.Cut(v2, ":")
		return keyID
	}
	if credential := query.Get("X-Amz-Credential"); credential != "" {
		keyID, _, _ := strings.Cut(credential, "/")
		return keyID
	}
	return query.Get("AWSAccessKeyId")
}

// logRequests logs each request that changes or reads an object, so a test's failure artifacts
// (the pod's log) show what the clients did.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		log.Printf("%s %s (%s)", r.Method, r.URL.Path, time.Since(start).Round(time.Millisecond))
	})
}
