package ease

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// B solves the EASE objective min ||X − XB||² + λ||B||² s.t. diag(B) = 0:
// B_jj = 0, and the stationarity condition (G + λI)·B = G − diagMat(μ)
// holds, i.e. ((G+λI)B)_ij = G_ij off the diagonal.
func TestSolveMeetsTheStationarityCondition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const users, n, lambda = 40, 7, 3.0
	x := make([][]float64, users)
	for u := range x {
		x[u] = make([]float64, n)
		for i := range x[u] {
			if r.Float64() < 0.4 {
				x[u][i] = 1
			}
		}
	}
	gram := func() []float64 {
		g := make([]float64, n*n)
		for _, row := range x {
			for i := range n {
				for j := range n {
					g[i*n+j] += row[i] * row[j]
				}
			}
		}
		return g
	}
	g := gram()
	b, err := Solve(context.Background(), gram(), n, lambda)
	if err != nil {
		t.Fatal(err)
	}
	for j := range n {
		if b[j*n+j] != 0 {
			t.Fatalf("B_%d%d = %g, want 0", j, j, b[j*n+j])
		}
		for i := range n {
			if i == j {
				continue
			}
			s := 0.0
			for k := range n {
				gk := g[i*n+k]
				if i == k {
					gk += lambda
				}
				s += gk * b[k*n+j]
			}
			if math.Abs(s-g[i*n+j]) > 1e-9*math.Max(1, math.Abs(g[i*n+j])) {
				t.Fatalf("((G+λI)B)_%d%d = %g, want G_%d%d = %g", i, j, s, i, j, g[i*n+j])
			}
		}
	}
	if _, err := Solve(context.Background(), make([]float64, 4), 2, 0); err == nil {
		t.Fatal("a zero Gram matrix with λ = 0 was solved")
	}
}

// BenchmarkSolve solves EASE over a random sparse binary matrix of 10·n
// users with about 20 items each: the refresh's O(n³) step at
// scorer.ease_max_items n. `go test -run XXX -bench Solve -benchtime 1x ./internal/ease`.
func BenchmarkSolve(b *testing.B) {
	for _, n := range []int{1000, 2000, 4000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, uint64(n)))
			base := make([]float64, n*n)
			row := make([]int, 20)
			for range 10 * n {
				for k := range row {
					row[k] = r.IntN(n)
				}
				for _, i := range row {
					for _, j := range row {
						if i <= j {
							base[i*n+j]++
						}
					}
				}
			}
			g := make([]float64, n*n)
			for b.Loop() {
				copy(g, base)
				if _, err := Solve(context.Background(), g, n, 300); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
