package notify_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/packline/packline/notify/notifytest"
)

// The peers these tests run against, mailpit (SMTP) and prism (a mock of
// Twilio's API from testdata/twilio.yaml), are started by notifytest, which
// installs them with scripts/test-tools.sh on first use; PACKLINE_MAILPIT
// and PACKLINE_PRISM point at binaries installed some other way. A peer that
// cannot be installed skips its tests on a developer's machine and fails
// them under CI (CI set).

var freePort = notifytest.FreePort

// mailpit is a running mailpit (see notifytest.Mailpit), read back under
// the names these tests use.
type mailpit struct{ *notifytest.MailpitServer }

func startMailpit(t *testing.T, args ...string) mailpit {
	t.Helper()
	return mailpit{notifytest.Mailpit(t, args...)}
}

func (m mailpit) messages(t *testing.T) []notifytest.Message {
	t.Helper()
	return m.Messages(t)
}

func (m mailpit) headers(t *testing.T, id string) map[string][]string {
	t.Helper()
	return m.Headers(t, id)
}

// startPrism serves an OpenAPI file with prism's mock server, validating
// every request against it (--errors: a request that breaks the contract
// gets a 4xx instead of a mock answer).
func startPrism(t *testing.T, spec string) string {
	t.Helper()
	bin := notifytest.Tool(t, "prism", "PACKLINE_PRISM")
	var err error
	for try := 0; try < 3; try++ {
		port := freePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		err = notifytest.StartPeer(t, 90*time.Second, notifytest.HTTPOK(base+"/"), bin,
			"mock", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--errors", spec)
		if err == nil {
			return base
		}
	}
	t.Fatal(err)
	return ""
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
