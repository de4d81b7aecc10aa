// Package samples holds a realistic body for every event type of every
// built-in provider. The verify tests, the `caddy webhook` tools and the
// examples all build their requests from these.
//
// Each file is samples/<provider>/<event>.json, with placeholders for what
// changes between events: ${id} (a short id), ${uuid} (a UUID derived from
// the id), ${time} (RFC 3339), ${unix} (Unix seconds) and ${unix_ms} (Unix
// milliseconds).
package samples

import (
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed */*.json
var files embed.FS

// Values fill a sample's placeholders.
type Values struct {
	ID   string    // ${id}, and the seed of ${uuid}
	Time time.Time // ${time}, ${unix}, ${unix_ms}
}

// Fresh returns values with a new random id and the given time.
func Fresh(t time.Time) Values {
	var b [8]byte
	rand.Read(b[:])
	return Values{ID: hex.EncodeToString(b[:]), Time: t}
}

// Providers lists the providers that have samples.
func Providers() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Events lists a provider's event types that have samples, sorted.
func Events(provider string) []string {
	entries, err := fs.ReadDir(files, provider)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(names)
	return names
}

// Body returns the sample body of one event type of one provider, with its
// placeholders filled.
func Body(provider, event string, v Values) ([]byte, error) {
	tmpl, err := files.ReadFile(path.Join(provider, event+".json"))
	if err != nil {
		return nil, fmt.Errorf("no sample for provider %q event %q (events: %s)", provider, event, strings.Join(Events(provider), ", "))
	}
	if v.Time.IsZero() {
		v.Time = time.Now()
	}
	sum := sha256.Sum256([]byte(v.ID))
	u := hex.EncodeToString(sum[:16])
	r := strings.NewReplacer(
		"${id}", v.ID,
		"${uuid}", u[0:8]+"-"+u[8:12]+"-4"+u[13:16]+"-a"+u[17:20]+"-"+u[20:32],
		"${time}", v.Time.UTC().Format(time.RFC3339),
		"${unix}", strconv.FormatInt(v.Time.Unix(), 10),
		"${unix_ms}", strconv.FormatInt(v.Time.UnixMilli(), 10),
	)
	return []byte(r.Replace(strings.TrimSpace(string(tmpl)))), nil
}
