package webhookcmd_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

// TestRedisMultiExample runs examples/redis-multi/run.sh as a user would,
// with the binary these tests built as the ./caddy it finds and free
// ports: the redis-server the script starts with its demo password, or
// one the user names with REDIS_ADDR and REDIS_PASSWORD. It must reuse the
// binary rather than build one, the second instance must answer the copy
// as a duplicate, and the app must receive the event once.
func TestRedisMultiExample(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "openssl", "od"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the example: %v", tool, err)
		}
	}
	redis, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer redis.Close()
	if _, err := redis.Do("CONFIG", "SET", "requirepass", "users-redis-password"); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]string{
		"own redis":    {fmt.Sprintf("REDIS_PORT=%d", testutil.FreePort())},
		"user's redis": {"REDIS_ADDR=" + redis.Addr, "REDIS_PASSWORD=users-redis-password"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("sh", "../examples/redis-multi/run.sh")
			cmd.Env = append(os.Environ(),
				"CADDY="+caddyBin,
				fmt.Sprintf("APP_PORT=%d", testutil.FreePort()),
				fmt.Sprintf("GATEWAY_PORTS=%d %d", testutil.FreePort(), testutil.FreePort()),
				"GOFLAGS=-mod=mod -this-flag-breaks-any-go-build", // a build would fail loudly
			)
			cmd.Env = append(cmd.Env, env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("run.sh: %v\n%s", err, out)
			}
			s := string(out)
			if strings.Contains(s, "building") {
				t.Errorf("run.sh built Caddy although CADDY names a binary:\n%s", s)
			}
			if strings.Count(s, "--- instance :") != 2 || strings.Count(s, `"status":"duplicate"`) != 1 || !strings.Contains(s, "the app received 1 event(s)") {
				t.Errorf("want one instance forwarding, the other answering a duplicate, one event at the app:\n%s", s)
			}
		})
	}
}
