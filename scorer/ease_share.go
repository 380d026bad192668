package scorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/store"
)

// EASEStore is where Run reads the user vectors and shares the model with
// the other processes' score roles (store/ease.go): one fits at a time,
// under a lease, and the others load what it wrote.
type EASEStore interface {
	EASESource
	EASEBuilt(ctx context.Context) (time.Time, error)
	EASEModel(ctx context.Context) ([]byte, time.Time, error)
	PutEASEModel(ctx context.Context, blob []byte, built time.Time) error
	TakeEASELease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
}

var _ EASEStore = (*store.Store)(nil)

// Run keeps the model up to date until ctx ends: Update at once, then
// every tenth of Interval (at most a minute). Errors are logged and
// retried at the next poll.
func (e *EASE) Run(ctx context.Context, st EASEStore, fit bool) error {
	t := time.NewTicker(min(max(e.opt.Interval/10, time.Millisecond), time.Minute))
	defer t.Stop()
	for {
		if _, err := e.Update(ctx, st, fit); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.opt.Logger.Warn("ease update failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Update loads the shared model when it is newer than this one; with fit,
// when the newest model is Interval old or there is none and no other
// process holds the fit's lease, it fits a model from st's user vectors
// on a thread of the lowest priority (inBackground), uses it and shares
// it. It says whether it fitted.
func (e *EASE) Update(ctx context.Context, st EASEStore, fit bool) (bool, error) {
	built, err := st.EASEBuilt(ctx)
	if err != nil {
		return false, err
	}
	var have time.Time
	if m := e.model.Load(); m != nil {
		have = m.built
	}
	if built.After(have) {
		blob, b, err := st.EASEModel(ctx)
		if err != nil {
			return false, err
		}
		if blob != nil {
			m, err := decodeEASEModel(blob)
			if err != nil {
				return false, err
			}
			m.built = b
			e.model.Store(m)
			have = b
			e.opt.Logger.Info("ease model loaded", "items", len(m.items), "users", m.users, "fitted", b)
		}
	}
	if !fit || (!have.IsZero() && time.Since(have) < e.opt.Interval) {
		return false, nil
	}
	ok, err := st.TakeEASELease(ctx, easeHolder, e.opt.Interval)
	if err != nil || !ok {
		return false, err
	}
	start := time.Now()
	if err := inBackground(func() error { return e.Refresh(ctx, st) }); err != nil {
		return false, err
	}
	m := e.model.Load()
	e.opt.Logger.Info("ease refreshed", "items", len(m.items), "users", m.users, "seconds", time.Since(start).Seconds())
	if err := st.PutEASEModel(ctx, encodeEASEModel(m), m.built); err != nil {
		return true, fmt.Errorf("sharing the model: %w", err)
	}
	return true, nil
}

// easeHolder names this process in the fit's lease.
var easeHolder = func() string {
	h, _ := os.Hostname()
	return h + ":" + strconv.Itoa(os.Getpid())
}()

// The shared model's blob, msgpack:
//
//	[version, users, items, start, cols, vals]
//
// version is easeModelVersion; users the users it was fitted on; items
// the item ids in model order; start, cols and vals the rows as
// easeModel holds them (start n+1 offsets, cols the kept columns of each
// row ascending, vals their float32 weights).
const easeModelVersion = 1

// encodeWith runs fn with a pooled encoder writing to a buffer of size
// bytes at first and returns what it wrote. Writing to a bytes.Buffer
// does not fail: the encoders' errors are not checked.
func encodeWith(size int, fn func(e *msgpack.Encoder)) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, size))
	e := msgpack.GetEncoder()
	defer msgpack.PutEncoder(e)
	e.Reset(buf)
	fn(e)
	return buf.Bytes()
}

func encodeEASEModel(m *easeModel) []byte {
	size := 16 + 5*len(m.start) + 8*len(m.cols)
	for _, it := range m.items {
		size += len(it) + 3
	}
	return encodeWith(size, func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(6)
		_ = e.EncodeInt(easeModelVersion)
		_ = e.EncodeInt(int64(m.users))
		_ = e.EncodeArrayLen(len(m.items))
		for _, it := range m.items {
			_ = e.EncodeString(it)
		}
		for _, xs := range [][]int32{m.start, m.cols} {
			_ = e.EncodeArrayLen(len(xs))
			for _, x := range xs {
				_ = e.EncodeInt(int64(x))
			}
		}
		_ = e.EncodeArrayLen(len(m.vals))
		for _, v := range m.vals {
			_ = e.EncodeFloat32(v)
		}
	})
}

var errEASEModel = errors.New("ease model: malformed blob")

func decodeEASEModel(blob []byte) (*easeModel, error) {
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(bytes.NewReader(blob))
	if n, err := d.DecodeArrayLen(); err != nil || n != 6 {
		return nil, fmt.Errorf("%w: %d fields (%v)", errEASEModel, n, err)
	}
	if v, err := d.DecodeInt(); err != nil || v != easeModelVersion {
		return nil, fmt.Errorf("%w: version %d (%v)", errEASEModel, v, err)
	}
	users, err := d.DecodeInt()
	if err != nil {
		return nil, fmt.Errorf("%w: users: %v", errEASEModel, err)
	}
	m := &easeModel{users: users}
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: items: %v", errEASEModel, err)
	}
	m.items = make([]string, n)
	m.idx = make(map[string]int, n)
	for i := range m.items {
		if m.items[i], err = d.DecodeString(); err != nil {
			return nil, fmt.Errorf("%w: item %d: %v", errEASEModel, i, err)
		}
		m.idx[m.items[i]] = i
	}
	for _, xs := range []*[]int32{&m.start, &m.cols} {
		k, err := d.DecodeArrayLen()
		if err != nil || k < 0 {
			return nil, fmt.Errorf("%w: rows: %v", errEASEModel, err)
		}
		*xs = make([]int32, k)
		for i := range *xs {
			if (*xs)[i], err = d.DecodeInt32(); err != nil {
				return nil, fmt.Errorf("%w: rows: %v", errEASEModel, err)
			}
		}
	}
	k, err := d.DecodeArrayLen()
	if err != nil || k != len(m.cols) {
		return nil, fmt.Errorf("%w: %d weights for %d columns (%v)", errEASEModel, k, len(m.cols), err)
	}
	m.vals = make([]float32, k)
	for i := range m.vals {
		if m.vals[i], err = d.DecodeFloat32(); err != nil {
			return nil, fmt.Errorf("%w: weights: %v", errEASEModel, err)
		}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// check verifies the rows' shape: n+1 offsets from 0 to the columns'
// count, every row's columns ascending, within the items, off the diagonal.
func (m *easeModel) check() error {
	n := len(m.items)
	if len(m.idx) != n {
		return fmt.Errorf("%w: repeated items", errEASEModel)
	}
	if len(m.start) != n+1 || m.start[0] != 0 || int(m.start[n]) != len(m.cols) {
		return fmt.Errorf("%w: %d row offsets for %d items and %d columns", errEASEModel, len(m.start), n, len(m.cols))
	}
	for i := range n {
		from, to := m.start[i], m.start[i+1]
		if to < from || int(to) > len(m.cols) {
			return fmt.Errorf("%w: row %d: offsets %d, %d", errEASEModel, i, from, to)
		}
		prev := int32(-1)
		for _, j := range m.cols[from:to] {
			if j <= prev || int(j) >= n || int(j) == i {
				return fmt.Errorf("%w: row %d: column %d", errEASEModel, i, j)
			}
			prev = j
		}
	}
	return nil
}

// easeRequest is what a fit solves: every user's items (user k's are
// flat[ends[k-1]:ends[k]], numbers of names) and the options.
type easeRequest struct {
	names              []string
	flat               []int32
	ends               []int
	lambda             float64
	maxItems, rowItems int
}

// The request's msgpack form:
//
//	[version, lambda, maxItems, rowItems, names, flat, ends]
func encodeEASERequest(r easeRequest) []byte {
	size := 32 + 5*len(r.flat) + 5*len(r.ends)
	for _, n := range r.names {
		size += len(n) + 3
	}
	return encodeWith(size, func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(7)
		_ = e.EncodeInt(easeModelVersion)
		_ = e.EncodeFloat64(r.lambda)
		_ = e.EncodeInt(int64(r.maxItems))
		_ = e.EncodeInt(int64(r.rowItems))
		_ = e.EncodeArrayLen(len(r.names))
		for _, n := range r.names {
			_ = e.EncodeString(n)
		}
		_ = e.EncodeArrayLen(len(r.flat))
		for _, x := range r.flat {
			_ = e.EncodeInt(int64(x))
		}
		_ = e.EncodeArrayLen(len(r.ends))
		for _, x := range r.ends {
			_ = e.EncodeInt(int64(x))
		}
	})
}

var errEASERequest = errors.New("ease request: malformed")

func decodeEASERequest(req []byte) (easeRequest, error) {
	var r easeRequest
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(bytes.NewReader(req))
	bad := func(what string, err error) (easeRequest, error) {
		return easeRequest{}, fmt.Errorf("%w: %s (%v)", errEASERequest, what, err)
	}
	if n, err := d.DecodeArrayLen(); err != nil || n != 7 {
		return bad(fmt.Sprintf("%d fields", n), err)
	}
	if v, err := d.DecodeInt(); err != nil || v != easeModelVersion {
		return bad(fmt.Sprintf("version %d", v), err)
	}
	var err error
	if r.lambda, err = d.DecodeFloat64(); err != nil || !(r.lambda > 0) {
		return bad("lambda", err)
	}
	if r.maxItems, err = d.DecodeInt(); err != nil || r.maxItems <= 0 {
		return bad("maxItems", err)
	}
	if r.rowItems, err = d.DecodeInt(); err != nil || r.rowItems <= 0 {
		return bad("rowItems", err)
	}
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return bad("names", err)
	}
	r.names = make([]string, n)
	for i := range r.names {
		if r.names[i], err = d.DecodeString(); err != nil {
			return bad("names", err)
		}
	}
	if n, err = d.DecodeArrayLen(); err != nil || n < 0 {
		return bad("flat", err)
	}
	r.flat = make([]int32, n)
	for i := range r.flat {
		if r.flat[i], err = d.DecodeInt32(); err != nil || r.flat[i] < 0 || int(r.flat[i]) >= len(r.names) {
			return bad("flat", err)
		}
	}
	if n, err = d.DecodeArrayLen(); err != nil || n < 0 {
		return bad("ends", err)
	}
	r.ends = make([]int, n)
	prev := 0
	for i := range r.ends {
		if r.ends[i], err = d.DecodeInt(); err != nil || r.ends[i] < prev || r.ends[i] > len(r.flat) {
			return bad("ends", err)
		}
		prev = r.ends[i]
	}
	return r, nil
}

// SolveEASERequest solves a fit's request (what EASEOptions.Solver is
// given) in this process and returns the model's blob: the work of
// `recstream ease-solve`, the child process a score role fits in.
func SolveEASERequest(ctx context.Context, req []byte) ([]byte, error) {
	r, err := decodeEASERequest(req)
	if err != nil {
		return nil, err
	}
	m, err := solveEASE(ctx, r.names, r.flat, r.ends, r.lambda, r.maxItems, r.rowItems)
	if err != nil {
		return nil, err
	}
	m.users = len(r.ends)
	return encodeEASEModel(m), nil
}
