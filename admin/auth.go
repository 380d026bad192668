package admin

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// UserAuth says who may read a user's events and list: the status page's
// user lookup and every route under /api/v1/users/. A request passes with
// "Authorization: Bearer <Token>" or with HTTP basic authentication as
// Username and Password; with Anonymous, every request passes. With none of
// them set, user routes answer 403: reading users' data is never open by
// accident.
type UserAuth struct {
	Token     string
	Username  string
	Password  string
	Anonymous bool
}

// check returns 0 when r may read users' data, else the status to answer
// (401: credentials missing or wrong; 403: no way to authenticate is
// configured) and why.
func (a UserAuth) check(r *http.Request) (int, string) {
	if a.Anonymous {
		return 0, ""
	}
	if a.Token == "" && a.Username == "" {
		return http.StatusForbidden, "user lookup is disabled: set admin.token or admin.username and admin.password (docs/security.md)"
	}
	if a.Token != "" {
		if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(h, a.Token) {
			return 0, ""
		}
	}
	if a.Username != "" {
		if u, p, ok := r.BasicAuth(); ok && equal(u, a.Username) && equal(p, a.Password) {
			return 0, ""
		}
	}
	return http.StatusUnauthorized, "authentication required to read a user's data"
}

// challenge sets WWW-Authenticate for a 401: basic when a username is set
// (so that a browser asks), else bearer.
func (a UserAuth) challenge(w http.ResponseWriter) {
	if a.Username != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="recstream", charset="UTF-8"`)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="recstream"`)
}

// Wrap returns next behind the check: the middleware of every route that
// reads or acts on one user's data.
func (a UserAuth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := a.check(r); code != 0 {
			if code == http.StatusUnauthorized {
				a.challenge(w)
			}
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
