package synth

import (
	"fmt"
	"hash/fnv"
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// DefaultMeanRecords is Shenzhen's average: 694 million records over 3.8
// million businesses.
const DefaultMeanRecords = 183

// MaxRecordsPerEnterprise caps the long tail of the skewed distribution so
// that one enterprise's report stays a realistic size.
const MaxRecordsPerEnterprise = 5000

// HistoryDays is the span of record dates: ten years before AsOf.
const HistoryDays = 3653

// DefaultAsOf is the fixed date generated records never pass, so that the
// same seed gives the same bytes on any day and the import's future-date
// check never rejects them.
var DefaultAsOf = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// recordsSigma is the spread of the log-normal number of records per
// enterprise: most have tens to a few hundred, a few have thousands.
const recordsSigma = 1.1

// Config chooses what to generate. The zero values of AsOf and MeanRecords
// mean DefaultAsOf and DefaultMeanRecords.
type Config struct {
	Region      credit.RegionID // six-digit region code, e.g. 440300
	Enterprises int
	Seed        uint64
	AsOf        time.Time
	MeanRecords float64
}

// Generator makes the records of a Config. It is safe for concurrent use:
// every method draws from a random stream of its own.
type Generator struct {
	cfg      Config
	city     city
	placeCum []int
	mu       float64
	dates    [HistoryDays]string // dates[HistoryDays-1] is AsOf
	mult     uint64              // USCC body permutation: x = mult*i + off mod bodySpace
	off      uint64
	salt     uint64 // from the region: regions of one seed differ
	src      sources
}

// bodySpace is the number of distinct six-character tails of an
// organisation code body: every enterprise index maps to its own tail, so
// USCCs never collide within a generated set.
const bodySpace = 31 * 31 * 31 * 31 * 31 * 31

// New checks cfg and prepares a generator.
func New(cfg Config) (*Generator, error) {
	if cfg.Enterprises < 0 || cfg.Enterprises > bodySpace {
		return nil, fmt.Errorf("synth: enterprises %d: want 0..%d", cfg.Enterprises, bodySpace)
	}
	if cfg.AsOf.IsZero() {
		cfg.AsOf = DefaultAsOf
	}
	if cfg.MeanRecords == 0 {
		cfg.MeanRecords = DefaultMeanRecords
	}
	if cfg.MeanRecords < 1 || cfg.MeanRecords > MaxRecordsPerEnterprise {
		return nil, fmt.Errorf("synth: mean records %g: want 1..%d", cfg.MeanRecords, MaxRecordsPerEnterprise)
	}
	c, err := regionCity(cfg.Region)
	if err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, city: c, mu: math.Log(cfg.MeanRecords) - recordsSigma*recordsSigma/2}
	sum := 0
	for _, p := range c.places {
		sum += p.share
		g.placeCum = append(g.placeCum, sum)
	}
	asOf := time.Date(cfg.AsOf.Year(), cfg.AsOf.Month(), cfg.AsOf.Day(), 0, 0, 0, 0, time.UTC)
	for d := range HistoryDays {
		g.dates[d] = asOf.AddDate(0, 0, d-(HistoryDays-1)).Format(time.DateOnly)
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.Region))
	g.salt = h.Sum64()
	r := rand.New(rand.NewPCG(cfg.Seed^g.salt, 0x5EED))
	for {
		g.mult = 1 + r.Uint64N(bodySpace-1)
		if g.mult%31 != 0 { // coprime with 31^6: the map is a permutation
			break
		}
	}
	g.off = r.Uint64N(bodySpace)
	g.src = newSources(c)
	return g, nil
}

// Config returns the generator's configuration with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// stream is one goroutine's random source, reseeded per enterprise.
type stream struct {
	pcg *rand.PCG
	r   *rand.Rand
}

func newStream() *stream {
	p := rand.NewPCG(0, 0)
	return &stream{pcg: p, r: rand.New(p)}
}

func (g *Generator) seed(s *stream, i int) {
	s.pcg.Seed(g.cfg.Seed^g.salt, uint64(i)*0x9E3779B97F4A7C15+0x243F6A8885A308D3)
}

// enterprise is what an enterprise's records share.
type enterprise struct {
	index     int
	uscc      credit.USCC
	place     *place
	est       int // day index of establishment
	n         int // number of records
	capital   int64
	employees int
	industry  string
	rep       string
}

// authority/type pairs and their shares: mostly enterprises (9/1), some
// individual businesses (9/2), cooperatives (9/3) and social organisations (5/1).
var entityKinds = []struct {
	code  string
	share int
}{{"91", 90}, {"92", 5}, {"93", 2}, {"51", 3}}

// enterprise draws the enterprise's fixed traits; the stream continues
// into its records.
func (g *Generator) enterprise(s *stream, i int) enterprise {
	g.seed(s, i)
	r := s.r
	e := enterprise{index: i}
	e.place = &g.city.places[pick(r, g.placeCum)]
	kind := entityKinds[0].code
	k := r.IntN(100)
	for _, ek := range entityKinds {
		if k < ek.share {
			kind = ek.code
			break
		}
		k -= ek.share
	}
	var body [8]byte
	if r.IntN(10) < 7 {
		body[0], body[1] = 'M', 'A' // codes issued since 2015
	} else {
		d := 19 + r.IntN(70)
		body[0], body[1] = byte('0'+d/10), byte('0'+d%10)
	}
	x := (g.mult*uint64(i) + g.off) % bodySpace
	for k := 7; k >= 2; k-- {
		body[k] = alphabet[x%31]
		x /= 31
	}
	first17 := kind + e.place.code + string(body[:]) + string(orgCheck(body))
	u, err := credit.CompleteUSCC(first17)
	if err != nil {
		panic(fmt.Sprintf("synth: generated an invalid USCC prefix %q: %v", first17, err)) // a bug here, not bad input
	}
	e.uscc = u
	// Establishment: a third before the window, the rest spread over it.
	e.est = 0
	if r.IntN(3) != 0 {
		e.est = r.IntN(HistoryDays - 30)
	}
	n := int(math.Exp(g.mu+recordsSigma*r.NormFloat64()) + 0.5)
	e.n = min(max(n, 1), MaxRecordsPerEnterprise)
	e.capital = int64(math.Exp(13+1.5*r.NormFloat64())) / 10000 * 10000
	e.employees = 1 + int(math.Exp(2.3+1.2*r.NormFloat64()))
	e.industry = industries[r.IntN(len(industries))]
	e.rep = surnames[r.IntN(len(surnames))] + givenNames[r.IntN(len(givenNames))]
	return e
}

const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// orgCheck is the check character of an organisation code (GB 11714), the
// USCC's positions 9-17.
func orgCheck(body [8]byte) byte {
	weights := [8]int{3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for k, c := range body {
		v := int(c - '0')
		if c >= 'A' {
			v = int(c-'A') + 10
		}
		sum += v * weights[k]
	}
	switch c := 11 - sum%11; c {
	case 10:
		return 'X'
	case 11:
		return '0'
	default:
		return byte('0' + c)
	}
}

// pick returns the index of a weighted choice given cumulative weights.
func pick(r *rand.Rand, cum []int) int {
	k := r.IntN(cum[len(cum)-1])
	for i, c := range cum {
		if k < c {
			return i
		}
	}
	return len(cum) - 1
}

// Enterprise returns the USCC of enterprise i (0 <= i < Enterprises).
func (g *Generator) Enterprise(i int) credit.USCC {
	return g.enterprise(newStream(), i).uscc
}

// Enterprises returns every enterprise's USCC in index order.
func (g *Generator) Enterprises() []credit.USCC {
	s := newStream()
	out := make([]credit.USCC, g.cfg.Enterprises)
	for i := range out {
		out[i] = g.enterprise(s, i).uscc
	}
	return out
}

// RecordCount returns how many records enterprise i has.
func (g *Generator) RecordCount(i int) int { return g.enterprise(newStream(), i).n }

// EnterpriseRecords returns enterprise i's records, normalised.
func (g *Generator) EnterpriseRecords(i int) []credit.Record {
	s := newStream()
	var sc scratch
	e := g.enterprise(s, i)
	out := make([]credit.Record, 0, e.n)
	for j := range e.n {
		rc := g.record(s.r, &e, j, &sc)
		out = append(out, credit.Record{
			Subject: e.uscc, Source: rc.source, SourceID: string(rc.sid), Category: rc.cat,
			Date: credit.Date(rc.date), Attrs: slices.Clone(rc.attrs),
		})
	}
	return out
}

// Records yields every record, enterprise by enterprise.
func (g *Generator) Records() iter.Seq[credit.Record] {
	return func(yield func(credit.Record) bool) {
		for i := range g.cfg.Enterprises {
			for _, r := range g.EnterpriseRecords(i) {
				if !yield(r) {
					return
				}
			}
		}
	}
}

// Enterprises returns n USCCs of region from seed. It panics on a region
// code New refuses: callers are demos and tests with fixed regions.
func Enterprises(region credit.RegionID, n int, seed uint64) []credit.USCC {
	return must(region, n, seed).Enterprises()
}

// Records yields the records of n enterprises of region from seed. It
// panics on a region code New refuses.
func Records(region credit.RegionID, n int, seed uint64) iter.Seq[credit.Record] {
	return must(region, n, seed).Records()
}

func must(region credit.RegionID, n int, seed uint64) *Generator {
	g, err := New(Config{Region: region, Enterprises: n, Seed: seed})
	if err != nil {
		panic(err)
	}
	return g
}

// record is one generated record; its byte slices live in a scratch
// reused for the next record.
type record struct {
	cat    credit.Category
	source string
	sid    []byte
	date   string
	attrs  []byte
}

type scratch struct {
	sid, attrs []byte
}

// Category shares per thousand records: periodic filings (tax, social
// insurance, housing fund, utility bills) dominate, as on real platforms.
var categoryCum = func() []int {
	shares := []int{40, 40, 15, 220, 200, 150, 250, 15, 20, 25, 5, 20}
	cum := make([]int, len(shares))
	s := 0
	for i, v := range shares {
		s += v
		cum[i] = s
	}
	return cum
}()

var categories = credit.AllCategories()

func (g *Generator) record(r *rand.Rand, e *enterprise, j int, sc *scratch) record {
	var rc record
	day := HistoryDays - 1
	if j == 0 {
		rc.cat = credit.Registration
		day = e.est
	} else {
		rc.cat = categories[pick(r, categoryCum)]
		day = e.est + r.IntN(HistoryDays-e.est)
	}
	rc.date = g.dates[day]
	a := sc.attrs[:0]
	var tag string
	rc.source, tag, a = g.attrs(a, r, e, j, rc.cat, rc.date, day)
	sc.attrs = a
	rc.attrs = a
	sid := append(sc.sid[:0], tag...)
	sid = append(sid, '-')
	sid = append(sid, rc.date[0:4]...)
	sid = append(sid, rc.date[5:7]...)
	sid = append(sid, rc.date[8:10]...)
	sid = append(sid, '-')
	sid = appendPadded(sid, j, 6)
	sc.sid = sid
	rc.sid = sid
	return rc
}

func appendPadded(b []byte, v, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(v), 10)
	for k := len(s); k < width; k++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
