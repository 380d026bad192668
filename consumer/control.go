package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/retry"
)

// ControlCommand is one message of the control topic (JSON):
//
//	{"op": "forget", "user_id": "u42", "request": "ticket-123"}
//
// op "forget" erases the user (see store.Forget); request is an optional
// reference copied into the audit record.
type ControlCommand struct {
	Op      string `json:"op"`
	UserID  string `json:"user_id"`
	Request string `json:"request,omitempty"`
}

// OpForget is the control operation that erases a user.
const OpForget = "forget"

// EncodeControl encodes a control command.
func EncodeControl(c ControlCommand) []byte {
	b, _ := json.Marshal(c)
	return b
}

// ForgetFunc erases a user and returns the users to rescore.
type ForgetFunc func(ctx context.Context, user, request string) (rescore []string, err error)

// ControlOptions configures the control consumer.
type ControlOptions struct {
	Kafka        Kafka
	Topic        string // control topic
	Group        string
	RefreshTopic string
	Forget       ForgetFunc
	Logger       *slog.Logger
}

// Control consumes admin commands: each is carried out (retrying until it
// succeeds), the affected users' refresh requests are published, and only
// then is the command committed. An erasure is idempotent, so a replay after
// a crash is harmless. Malformed commands are logged and skipped.
type Control struct {
	opt ControlOptions
}

// NewControl returns a control consumer.
func NewControl(opt ControlOptions) *Control {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Control{opt: opt}
}

// Run consumes until ctx ends.
func (c *Control) Run(ctx context.Context) error {
	r := c.opt.Kafka.reader(c.opt.Topic, c.opt.Group, 16)
	defer c.opt.Kafka.closeReader(r, "kafka_group", c.opt.Group)
	w := c.opt.Kafka.NewWriter()
	defer w.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.opt.Logger.Warn("fetching control commands", "err", err)
			if !retry.Sleep(ctx, fetchRetryWait) {
				return nil
			}
			continue
		}
		b := retry.Backoff{Min: retryMin, Max: retryMax}
		for {
			err := c.handle(ctx, w, m)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			c.opt.Logger.Warn("control command failed; retrying", "offset", m.Offset, "err", err)
			if !b.Wait(ctx) {
				return nil
			}
		}
		if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			c.opt.Logger.Warn("committing control command; it will be replayed (erasure is idempotent)", "err", err)
		}
	}
}

var errBadCommand = errors.New("bad control command")

func (c *Control) handle(ctx context.Context, w *kafka.Writer, m kafka.Message) error {
	cmd, err := decodeControl(m.Value)
	if err != nil {
		c.opt.Logger.Warn("skipping control command", "offset", m.Offset, "partition", m.Partition, "err", err)
		return nil
	}
	users, err := c.opt.Forget(ctx, cmd.UserID, cmd.Request)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(users))
	now := time.Now().UnixMilli()
	for i, u := range users {
		msgs[i] = kafka.Message{Topic: c.opt.RefreshTopic, Key: []byte(u), Value: EncodeRefresh(RefreshRequest{User: u, TS: now})}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publishing refresh requests: %w", err)
	}
	return nil
}

func decodeControl(b []byte) (ControlCommand, error) {
	var cmd ControlCommand
	if err := json.Unmarshal(b, &cmd); err != nil {
		return cmd, fmt.Errorf("%w: %v", errBadCommand, err)
	}
	if cmd.Op != OpForget {
		return cmd, fmt.Errorf("%w: unknown op %q", errBadCommand, cmd.Op)
	}
	if r := event.ValidateID(cmd.UserID, 0); r != "" {
		return cmd, fmt.Errorf("%w: user_id: %s", errBadCommand, r)
	}
	return cmd, nil
}

// PublishRefresh writes refresh requests for users with writer-side
// settings of k; for callers outside the consumers (recstream forget).
func (k Kafka) PublishRefresh(ctx context.Context, topic string, users []string) error {
	w := k.NewWriter()
	defer w.Close()
	now := time.Now().UnixMilli()
	msgs := make([]kafka.Message, len(users))
	for i, u := range users {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(u), Value: EncodeRefresh(RefreshRequest{User: u, TS: now})}
	}
	return w.WriteMessages(ctx, msgs...)
}
