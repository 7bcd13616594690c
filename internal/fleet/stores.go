package fleet

import (
	"context"
	"fmt"
	"regexp"
)

// Store is a store made with `packline stores create`, with its two keys.
type Store struct {
	ID, Name   string
	Flow       string
	Storefront string
	Merchant   string
}

var (
	storeRE      = regexp.MustCompile(`store .* \((\S+)\) runs`)
	storefrontRE = regexp.MustCompile(`storefront key: (\S+)`)
	merchantRE   = regexp.MustCompile(`merchant key:\s+(\S+)`)
)

// CreateStore runs `packline stores create` for a store of flow.
func CreateStore(ctx context.Context, bin string, env []string, name, flow string) (*Store, error) {
	out, err := Run(ctx, bin, env, "stores", "create", "--name", name, "--flow", flow)
	if err != nil {
		return nil, err
	}
	id, sf, mk := storeRE.FindStringSubmatch(out), storefrontRE.FindStringSubmatch(out), merchantRE.FindStringSubmatch(out)
	if id == nil || sf == nil || mk == nil {
		return nil, fmt.Errorf("packline stores create printed no store id and keys:\n%s", out)
	}
	return &Store{ID: id[1], Name: name, Flow: flow, Storefront: sf[1], Merchant: mk[1]}, nil
}
