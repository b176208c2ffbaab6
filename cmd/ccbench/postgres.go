package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prdcredit/ccnode/credit/synth"
)

// pgResults are PostgreSQL's figures on the same data set.
type pgResults struct {
	copyRate       float64 // median rows/s of COPY into the indexed table
	bytesPerRecord float64
	lat            []latency
}

// pgServer is a throwaway PostgreSQL cluster in a temporary folder.
type pgServer struct {
	bin    string // folder of initdb and pg_ctl
	data   string
	port   int
	runAs  []string // runuser prefix when we are root: postgres refuses to run as root
	stderr io.Writer
}

// pgBinDir finds initdb and pg_ctl, installing Debian's postgresql package
// when they are missing.
func pgBinDir(ctx context.Context, out io.Writer) (string, error) {
	find := func() string {
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
			return filepath.Dir(m[len(m)-1])
		}
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	fmt.Fprintln(out, "installing PostgreSQL from Debian's packages ...")
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "--no-install-recommends", "postgresql"}} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %w\n%s", args, err, b)
		}
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", errors.New("postgresql installed but initdb not found")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startPostgres(ctx context.Context, out io.Writer) (*pgServer, error) {
	bin, err := pgBinDir(ctx, out)
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp("", "ccbench-pg-")
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, data: data, stderr: out}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(data)
			return nil, fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(data, uid, gid); err != nil {
			os.RemoveAll(data)
			return nil, err
		}
		s.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	if err := s.run(ctx, "initdb", "-D", data+"/db", "-U", "bench", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c shared_buffers=1GB -c max_wal_size=8GB", s.port, data)
	if err := s.run(ctx, "pg_ctl", "-D", data+"/db", "-l", data+"/log", "-w", "-o", opts, "start"); err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	return s, nil
}

func (s *pgServer) run(ctx context.Context, name string, args ...string) error {
	argv := append(append(append([]string{}, s.runAs...), filepath.Join(s.bin, name)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, b)
	}
	return nil
}

// Close stops the server and removes its folder; safe to call twice.
func (s *pgServer) Close() error {
	if s.data == "" {
		return nil
	}
	err := s.run(context.Background(), "pg_ctl", "-D", s.data+"/db", "-m", "fast", "-w", "stop")
	os.RemoveAll(s.data)
	s.data = ""
	return err
}

func (s *pgServer) connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("postgres://bench@127.0.0.1:%d/postgres?sslmode=disable", s.port))
}

const pgSchema = `
DROP TABLE IF EXISTS records;
CREATE TABLE records (
	uscc text NOT NULL, source text NOT NULL, source_id text NOT NULL,
	category text NOT NULL, date date NOT NULL, attrs jsonb NOT NULL);
CREATE INDEX records_report ON records (uscc, category, date);`

// The same question ccnode's store answers: every record of one subject in
// category and date order.
const pgReport = `SELECT uscc, source, source_id, category, date::text, attrs::text
FROM records WHERE uscc = $1 ORDER BY category, date, source, source_id`

func benchPostgres(ctx context.Context, out io.Writer, dir string, ds *dataset, g *synth.Generator, runs int, readers []int, lookups int) (*pgResults, error) {
	s, err := startPostgres(ctx, out)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	res := &pgResults{}
	var rates []float64
	total := ds.firstRecs + ds.restRecs
	for r := range runs {
		if _, err := conn.Exec(ctx, pgSchema); err != nil {
			return nil, err
		}
		start := time.Now()
		for _, f := range []string{ds.firstCSV, ds.restCSV} {
			fh, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			_, err = conn.PgConn().CopyFrom(ctx, fh,
				"COPY records (uscc, source, source_id, category, date, attrs) FROM STDIN WITH (FORMAT csv, HEADER true)")
			fh.Close()
			if err != nil {
				return nil, fmt.Errorf("COPY %s: %w", filepath.Base(f), err)
			}
		}
		// COPY's rows are in the table once it returns; CHECKPOINT makes them
		// durable on disk the way ccnode's import is at exit.
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			return nil, err
		}
		el := time.Since(start)
		rates = append(rates, float64(total)/el.Seconds())
		fmt.Fprintf(out, "postgres COPY run %d: %d rows in %s: %.0f rows/s\n", r+1, total, el.Round(time.Millisecond), rates[r])
	}
	res.copyRate = median(rates)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE records"); err != nil {
		return nil, err
	}
	var size int64
	if err := conn.QueryRow(ctx, "SELECT pg_total_relation_size('records')").Scan(&size); err != nil {
		return nil, err
	}
	res.bytesPerRecord = float64(size) / float64(total)

	us := g.Enterprises()
	warm := false
	for _, nr := range readers {
		conns := make([]*pgx.Conn, nr)
		for k := range conns {
			if conns[k], err = s.connect(ctx); err != nil {
				return nil, err
			}
			defer conns[k].Close(context.Background())
			if _, err := conns[k].Prepare(ctx, "report", pgReport); err != nil {
				return nil, err
			}
		}
		read := func(w, i int) (int, error) {
			rows, err := conns[w].Query(ctx, "report", string(us[i]))
			if err != nil {
				return 0, err
			}
			k := 0
			for rows.Next() {
				_ = rows.RawValues()
				k++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, err
			}
			if k == 0 {
				return 0, fmt.Errorf("no rows for %s", us[i])
			}
			return k, nil
		}
		if !warm {
			// Every enterprise once, so that PostgreSQL's shared buffers and
			// the page cache hold what the measured queries read.
			if err := warmReads(nr, len(us), read); err != nil {
				return nil, err
			}
			warm = true
		}
		l, err := measureReads(nr, lookups, len(us), false, read)
		if err != nil {
			return nil, err
		}
		res.lat = append(res.lat, l)
	}
	return res, s.Close()
}
