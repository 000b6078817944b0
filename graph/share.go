package graph

import (
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// sharedFields are, by type, the fields whose answer depends on the value
// alone, not on who asks nor on anything read for the request: a
// deployment object's own columns and its stack's (the feed delivers
// objects with their stack attached, so stack resolves without a read);
// for each, the type of its selection ("" for a leaf). A field with
// arguments is never shared.
var sharedFields = map[string]map[string]string{
	"DeploymentObject": {
		"__typename": "", "id": "", "sequenceId": "", "yamlContent": "", "yamlChecksum": "",
		"isDeletionMarker": "", "submittedAt": "", "createdAt": "", "deletedAt": "", "stack": "Stack",
	},
	"Stack": {
		"__typename": "", "id": "", "name": "", "description": "", "createdAt": "", "updatedAt": "", "deletedAt": "",
	},
}

// sharedRoots are the subscriptions whose values the feed hands to many
// subscribers at once (the same object to every agent carrying its stack,
// and to the dashboards watching it).
var sharedRoots = map[string]string{
	"agentDeploymentObjects": "DeploymentObject",
	"stackDeploymentObjects": "DeploymentObject",
}

// ShareKey is the key under which a subscription's answers may be shared
// with every subscription of the same key (wstransport.Config.Share): the
// answer to one value is then encoded once, not once per subscriber. It
// is the operation's root field and selection as gqlgen executes them
// (fragments expanded, @skip and @include decided), when every field
// selected is in sharedFields; otherwise "" (not shared). Arguments of the
// root field (after, agentId, stackId) decide which values come, not how
// one is answered, so they are not part of the key.
func ShareKey(oc *graphql.OperationContext) string {
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return ""
	}
	// Fields are collected on a copy: the operation's own context caches
	// what it collects for its life, and the key needs none of it.
	oc = &graphql.OperationContext{RawQuery: oc.RawQuery, Variables: oc.Variables, OperationName: oc.OperationName, Doc: oc.Doc, Operation: oc.Operation}
	root := graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Subscription"})
	if len(root) != 1 {
		return ""
	}
	typ, ok := sharedRoots[root[0].Name]
	if !ok {
		return ""
	}
	var b strings.Builder
	b.WriteString(root[0].Alias + ":" + root[0].Name)
	if !writeShared(oc, &b, root[0].Selections, typ) {
		return ""
	}
	return b.String()
}

// writeShared writes the selection's fields of type typ to b; false when
// one of them is not shared.
func writeShared(oc *graphql.OperationContext, b *strings.Builder, sel ast.SelectionSet, typ string) bool {
	b.WriteByte('{')
	for _, f := range graphql.CollectFields(oc, sel, []string{typ}) {
		sub, ok := sharedFields[typ][f.Name]
		if !ok || len(f.Arguments) > 0 {
			return false
		}
		b.WriteString(f.Alias + ":" + f.Name)
		if sub != "" && !writeShared(oc, b, f.Selections, sub) {
			return false
		}
		b.WriteByte(' ')
	}
	b.WriteByte('}')
	return true
}
