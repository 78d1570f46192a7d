package follow

import (
	"testing"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// TestStoreFor: an open that gives none of endpoint, region and path style
// gets the ones the replica was made with; one that gives any of them uses
// exactly what it gives. What a state file keeps has no user info.
func TestStoreFor(t *testing.T) {
	yes := true
	made := replica.StoreOptions{Endpoint: "http://10.0.0.1:9000", Region: "auto", PathStyle: &yes}
	got := StoreFor(store.Options{Create: true}, made)
	if got.Endpoint != made.Endpoint || got.Region != made.Region || got.PathStyle != made.PathStyle || !got.Create {
		t.Errorf("no options given: %+v; want the replica's %+v", got, made)
	}
	given := store.Options{Region: "eu-west-1"}
	if got := StoreFor(given, made); got != given {
		t.Errorf("region given: %+v; want only what was given, %+v", got, given)
	}
	if k := keep(store.Options{Endpoint: "https://user:secret@r2.example.com/x"}); k.Endpoint != "https://r2.example.com/x" {
		t.Errorf("kept endpoint %q still has its user info", k.Endpoint)
	}
}
