module github.com/org/rustpatcher-go

go 1.26.8

require (
	github.com/tv42/zbase32 v0.0.0-20220222190657-f76a9fc892fa
	golang.org/x/mod v0.43.0
)
