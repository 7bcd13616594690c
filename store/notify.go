package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// NotifyChannel is the PostgreSQL channel told that outbox rows were
// committed; relays LISTEN on it.
const NotifyChannel = "packline_outbox"

// outboxNotifier sends NOTIFY NotifyChannel after commits that wrote outbox
// rows, from a goroutine of its own and outside every transaction.
//
// A NOTIFY inside the transaction that writes the rows takes PostgreSQL's
// one server-wide notification lock at COMMIT and holds it while the
// commit is flushed, so every committing writer queued behind every other.
// Here each commit only signals; while one NOTIFY is on its way, any
// number of signals become the one NOTIFY that follows it. A relay is
// woken at most one round trip after the commit, and a NOTIFY that fails
// costs one poll interval (the relay polls as well).
type outboxNotifier struct {
	db   *sqlx.DB
	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

func newOutboxNotifier(db *sqlx.DB) *outboxNotifier {
	ctx, stop := context.WithCancel(context.Background())
	n := &outboxNotifier{db: db, kick: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	go n.run(ctx)
	return n
}

// signal asks for a NOTIFY; it never blocks.
func (n *outboxNotifier) signal() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *outboxNotifier) run(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.db.ExecContext(nctx, `SELECT pg_notify('`+NotifyChannel+`', '')`)
		cancel()
		if err != nil && ctx.Err() == nil {
			slog.Debug("notify outbox; relays find the rows on their next poll", "err", err)
		}
	}
}

// close stops the goroutine; a signal not yet sent is dropped.
func (n *outboxNotifier) close() {
	n.stop()
	<-n.done
}

// ListenOutbox calls wake on every NOTIFY of NotifyChannel on the
// PostgreSQL database at url, and once after each reconnect (notifications
// sent while disconnected are lost), until stop is called or ctx is done.
func ListenOutbox(ctx context.Context, url string, wake func(), log *slog.Logger) (stop func()) {
	l := pq.NewListener(url, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "outbox listener", "event", ev, "err", err)
		}
	})
	if err := l.Listen(NotifyChannel); err != nil {
		log.WarnContext(ctx, "listen for outbox commits; polling only", "err", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-l.Notify:
				// A nil notification follows a reconnect: wake as well.
				wake()
			}
		}
	}()
	return func() {
		l.Close()
		<-done
	}
}
