package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
)

// cancelEvery is how many pages a loop over a database's pages goes
// between looks at its context, so that a stop is never waiting on a loop
// over millions of pages.
const cancelEvery = 4096

// ErrChainBroken means a file cannot follow the replica's current version:
// its page size differs, or its pre-apply checksum is not the replica's. The
// store has moved to another lineage and only a snapshot can bring the
// replica back.
var ErrChainBroken = errors.New("file does not continue the replica's chain")

// Apply decodes one LTX file on top of the head, verifies it, and publishes
// the version it produces. The file must cover the next TXID (MinTXID ≤
// head+1 ≤ MaxTXID); a compacted file that starts earlier is fine, because it
// holds the final image of every page changed in its range.
//
// Nothing is published unless the file checksum in the trailer matches and,
// when the file carries database checksums, the pre-apply checksum equals
// the replica's and the post-apply checksum equals the result.
//
// want is what the store's listing says the file is (its name): the header
// must agree, and the database it describes must fit want.MaxSize. Errors
// that prove the file bad wrap ErrCorrupt; any other (a local error such as
// ENOSPC, a cancelled ctx) says nothing about the file.
func (r *Replica) Apply(ctx context.Context, rd io.Reader, want ltxguard.Want) (*Version, error) {
	head := r.head
	if head == nil {
		return nil, ErrNoReplica
	}
	want.GrowFrom, want.GrowPageSize = head.Commit, head.PageSize
	dec := newDecoder(rd, want)
	if err := dec.DecodeHeader(); err != nil {
		return nil, corrupt(fmt.Errorf("decode header: %w", err))
	}
	hdr := dec.Header()
	if hdr.PageSize != head.PageSize {
		return nil, fmt.Errorf("page size changes from %d to %d: %w", head.PageSize, hdr.PageSize, ErrChainBroken)
	}
	if hdr.MinTXID > head.TXID+1 || hdr.MaxTXID <= head.TXID {
		return nil, corrupt(fmt.Errorf("TXIDs %s-%s do not follow TXID %s", hdr.MinTXID, hdr.MaxTXID, head.TXID))
	}
	// The head's checksum is unknown (0) after a snapshot that carried
	// none, and stays so while the files carry none; a file that carries
	// one needs it, so it is computed then, once.
	headSum := head.Checksum
	if !hdr.NoChecksum() && headSum == 0 {
		var err error
		if headSum, err = r.checksumOf(ctx, head); err != nil {
			return nil, err
		}
	}
	if !hdr.NoChecksum() && hdr.MinTXID == head.TXID+1 && hdr.PreApplyChecksum != headSum {
		return nil, fmt.Errorf("pre-apply checksum %s is not the replica's %s at TXID %s: %w",
			hdr.PreApplyChecksum, headSum, head.TXID, ErrChainBroken)
	}

	hook("apply:start")
	seg, err := r.createSegment(hdr.PageSize)
	if err != nil {
		return nil, err
	}
	m, err := r.decodePages(ctx, dec, head, headSum, seg)
	if err != nil {
		seg.abort()
		return nil, err
	}
	done, err := seg.finish(m)
	if err != nil {
		return nil, err
	}
	hook("apply:written")
	v := r.newVersion(done)
	r.publish(v)
	hook("apply:done")
	return v, nil
}

// newDecoder decodes an LTX stream. The decoder would otherwise keep the
// file's page index in a map, built at Close (tens of bytes per page: a
// snapshot's memory would grow with the database); the index is verified
// either way, and nothing here uses it.
//
// Its file checksum is computed with crc64iso (see fastFileChecksum).
//
// The stream passes through an ltxguard.Reader first, so that the decoder
// never acts on a header or frame that breaks want or walrust's limits.
func newDecoder(rd io.Reader, want ltxguard.Want) *ltx.Decoder {
	return decoderOn(guarded(rd, want))
}

// guarded is rd behind the guard (want's rules; DefaultMaxSize if it sets
// none), buffered for a decoder.
func guarded(rd io.Reader, want ltxguard.Want) *bufio.Reader {
	if want.MaxSize <= 0 {
		want.MaxSize = DefaultMaxSize
	}
	return bufio.NewReaderSize(ltxguard.NewReader(rd, want), 256<<10)
}

// decoderOn is the ltx decoder of br, with walrust's settings.
func decoderOn(br *bufio.Reader) *ltx.Decoder {
	dec := ltx.NewDecoder(br)
	dec.SetRetainPageIndex(false)
	fastFileChecksum(dec)
	return dec
}

// DefaultMaxSize bounds the database an LTX file may describe (commit ×
// page size) unless the caller sets another: large enough for any replica
// one would download, small enough that a hostile commit of 2^32-1 pages
// is refused before anything is sized by it.
const DefaultMaxSize int64 = 1 << 40

// ErrCorrupt is wrapped by errors that prove an LTX file bad: it failed
// verification (its checksum, its header against its name, its pages
// against its header, walrust's limits). Only such a file is rejected; any
// other error — the store's, or a local one such as ENOSPC or EMFILE — is
// retried.
var ErrCorrupt = errors.New("corrupt LTX file")

// corruptError marks err as proof of a bad file without changing its text.
type corruptError struct{ err error }

func (e corruptError) Error() string        { return e.err.Error() }
func (e corruptError) Unwrap() error        { return e.err }
func (e corruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(err error) error { return corruptError{err} }

// decodePages streams the file's pages into the segment while updating the
// running checksum from the head's images of the same pages.
func (r *Replica) decodePages(ctx context.Context, dec *ltx.Decoder, head *Version, headSum ltx.Checksum, seg *segmentWriter) (segmentMeta, error) {
	hdr := dec.Header()
	lockPgno := ltx.LockPgno(hdr.PageSize)
	data := make([]byte, hdr.PageSize)
	old := make([]byte, hdr.PageSize)
	hasher := crc64iso.New()
	sum, page1Sum := headSum, head.Page1Checksum
	// An unknown checksum stays unknown: no old page is read, no page
	// hashed but page 1 (whose checksum a later computation starts from).
	track := headSum != 0

	// oldSum is the checksum contribution of page pgno at the head.
	oldSum := func(pgno uint32) (ltx.Checksum, error) {
		switch {
		case pgno == 1:
			return head.Page1Checksum, nil
		case pgno > head.Commit || pgno == lockPgno:
			return 0, nil
		}
		err := r.readPageFetching(head, pgno, old)
		if err != nil {
			return 0, err
		}
		return ltx.ChecksumPageWithHasher(hasher, pgno, old), nil
	}

	var ph ltx.PageHeader
	for {
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			return segmentMeta{}, corrupt(fmt.Errorf("decode page: %w", err))
		}
		if ph.Pgno == 1 {
			if err := checkPage1(data, hdr.PageSize); err != nil {
				return segmentMeta{}, err
			}
		}
		if err := seg.writePage(ph.Pgno, data); err != nil {
			return segmentMeta{}, err
		}
		if !track && ph.Pgno != 1 {
			continue
		}
		c := ltx.ChecksumPageWithHasher(hasher, ph.Pgno, data)
		if ph.Pgno == 1 {
			page1Sum = c
		}
		if track {
			o, err := oldSum(ph.Pgno)
			if err != nil {
				return segmentMeta{}, err
			}
			sum = ltx.ChecksumFlag | (sum ^ o ^ c)
		}
	}
	if err := dec.Close(); err != nil {
		return segmentMeta{}, corrupt(fmt.Errorf("verify: %w", err))
	}
	// Pages cut off by a shrinking commit (VACUUM) leave the checksum.
	for pgno := hdr.Commit + 1; track && pgno <= head.Commit; pgno++ {
		if pgno%cancelEvery == 0 && ctx.Err() != nil {
			return segmentMeta{}, ctx.Err()
		}
		o, err := oldSum(pgno)
		if err != nil {
			return segmentMeta{}, err
		}
		sum = ltx.ChecksumFlag | (sum ^ o)
	}
	if tr := dec.Trailer(); !hdr.NoChecksum() && tr.PostApplyChecksum != sum {
		return segmentMeta{}, corrupt(fmt.Errorf("post-apply checksum %s does not match the result %s", tr.PostApplyChecksum, sum))
	}
	return segmentMeta{
		MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, PageSize: hdr.PageSize, Commit: hdr.Commit,
		Timestamp: hdr.Timestamp, Checksum: sum, Page1Checksum: page1Sum,
	}, nil
}

// checksumOf computes the LTX checksum of the database at v from its
// pages: for a replica whose checksum is unknown (its snapshot carried
// none) when a file that carries one arrives.
func (r *Replica) checksumOf(ctx context.Context, v *Version) (ltx.Checksum, error) {
	hasher := crc64iso.New()
	buf := make([]byte, v.PageSize)
	lockPgno := ltx.LockPgno(v.PageSize)
	// Page 1 as the primary wrote it: the copy here carries the header
	// walrust serves (its own change counter), wherever it is read from.
	sum := ltx.ChecksumFlag | v.Page1Checksum
	for pgno := uint32(2); pgno <= v.Commit; pgno++ {
		if pgno == lockPgno {
			continue
		}
		if pgno%cancelEvery == 0 && ctx.Err() != nil {
			return 0, fmt.Errorf("checksum of TXID %s: %w", v.TXID, ctx.Err())
		}
		err := r.readPageFetching(v, pgno, buf)
		if err != nil {
			return 0, fmt.Errorf("checksum of TXID %s: %w", v.TXID, err)
		}
		sum = ltx.ChecksumFlag | (sum ^ ltx.ChecksumPageWithHasher(hasher, pgno, buf))
	}
	return sum, nil
}
