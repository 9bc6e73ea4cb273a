// A real OpenID Connect provider for the auth proxy's kind test: zitadel/oidc's OpenID-certified
// provider library with its example login form, one static web client and the users of a JSON
// file. dex, the usual choice, is not served by the Go module proxy at any release with a go.mod.
//
// Environment: ISSUER (the URL the browser and the proxy both use), PORT, CLIENT_ID,
// CLIENT_SECRET, REDIRECT_URI (the proxy's /oauth2/callback), USERS_FILE
// ({"<id>": {"ID", "Username", "Password", "Email", "EmailVerified", ...}}).
package main

import (
	"log/slog"
	"net/http"
	"os"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func mustEnv(logger *slog.Logger, name string) string {
	value := os.Getenv(name)
	if value == "" {
		logger.Error("missing environment variable: set it in the Deployment", "name", name)
		os.Exit(2)
	}
	return value
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	issuer := mustEnv(logger, "ISSUER")
	port := mustEnv(logger, "PORT")
	storage.RegisterClients(
		storage.WebClient(mustEnv(logger, "CLIENT_ID"), mustEnv(logger, "CLIENT_SECRET"), mustEnv(logger, "REDIRECT_URI")),
	)
	users, err := storage.StoreFromFile(mustEnv(logger, "USERS_FILE"))
	if err != nil {
		logger.Error("cannot read USERS_FILE", "error", err)
		os.Exit(2)
	}
	router := exampleop.SetupServer(issuer, storage.NewStorage(users), logger, false)
	logger.Info("OpenID provider listening", "issuer", issuer, "port", port)
	if err := http.ListenAndServe(":"+port, router); err != nil {
		logger.Error("server stopped", "error", err)
		os.Exit(1)
	}
}
