// Code generation for the module. gqlgen itself is pinned by the tool
// directive in go.mod; this is the only go:generate line for it.
package main

//go:generate go tool gqlgen generate
