package main

// rpseed talks HTTPS to GitHub (--github). A container built FROM scratch
// (deploy/Dockerfile) has no CA certificates: then, and only then, the
// roots compiled in by this package (Mozilla's) are used.
import _ "golang.org/x/crypto/x509roots/fallback"
