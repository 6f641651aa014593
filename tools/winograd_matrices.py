"""Derive the Winograd F(m, r) transform matrices used by src/kernels/winograd.rs (Toom-Cook on the
points 0, 1, -1, 2, -2 and infinity) and check the 1-D identity y_i = sum_k g_k d_(i+k)
symbolically. Run: python3 tools/winograd_matrices.py (needs sympy)."""
import sympy as sp, sys
def derive(m, r, pts):
    a = m + r - 1
    assert len(pts) == a - 1
    AT = sp.zeros(m, a); G = sp.zeros(a, r)
    for j, p in enumerate(pts):
        N = sp.prod([p - q for q in pts if q != p])
        for i in range(m): AT[i, j] = sp.Integer(p)**i
        for k in range(r): G[j, k] = sp.Rational(p)**k / N
    AT[m-1, a-1] = 1; G[a-1, r-1] = 1
    BT = sp.zeros(a, a)
    for l in range(a):
        unk = sp.symbols(f'b0:{a}')
        eqs = []
        for i in range(m):
            for k in range(r):
                eqs.append(sum(AT[i, j]*G[j, k]*unk[j] for j in range(a)) - (1 if l == i + k else 0))
        sol = sp.solve(eqs, unk, dict=True)
        assert sol, (m, r, l)
        for j in range(a): BT[j, l] = sol[0].get(unk[j], 0)
    # verify 1-D identity: y_i = sum_k g_k d_{i+k}
    g = sp.symbols(f'g0:{r}'); d = sp.symbols(f'd0:{a}')
    gv = sp.Matrix(g); dv = sp.Matrix(d)
    y = AT * (G*gv).multiply_elementwise(BT*dv)
    for i in range(m):
        assert sp.expand(y[i] - sum(g[k]*d[i+k] for k in range(r))) == 0
    return AT, G, BT
for (m, r) in [(2, 3), (4, 3), (2, 5)]:
    pts = [0, 1, -1, 2, -2][: m + r - 2]
    AT, G, BT = derive(m, r, pts)
    print(f"F({m},{r}) points {pts} + inf")
    print("AT", AT.tolist()); print("G", G.tolist()); print("BT", BT.tolist())
