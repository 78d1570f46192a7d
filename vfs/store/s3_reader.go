package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3Reader streams one object. The SDK retries a GET until its response
// headers arrive, not once the body flows; when the body breaks (a reset, a
// stalled connection, a server restart) this reader asks again for the rest
// with a ranged GET of the same ETag, so a large snapshot is not downloaded
// again from its start. Every byte it delivers is counted in Stats.Bytes.
type s3Reader struct {
	s       *S3Store
	ctx     context.Context
	op, key string

	body  io.ReadCloser // nil once closed or failed
	etag  string
	off   int64 // offset of the next byte to deliver
	end   int64 // a ranged read's end (exclusive); 0: to the object's end
	size  int64 // object size, -1 if neither the server nor the listing said
	fails int   // resumes in a row without a byte of progress
	err   error // sticky error once the reader has given up

	// listed is the size the listing gave, -1 if unknown: a response that
	// announces another size is for another object than the one listed.
	listed int64
}

// get issues the GET for the bytes from r.off on.
func (r *s3Reader) get() error {
	in := &s3.GetObjectInput{Bucket: aws.String(r.s.bucket), Key: aws.String(r.key)}
	ranged := r.off > 0 || r.end > 0
	if ranged {
		rng := fmt.Sprintf("bytes=%d-", r.off)
		if r.end > 0 {
			rng += fmt.Sprint(r.end - 1)
		}
		in.Range = aws.String(rng)
		if r.etag != "" {
			in.IfMatch = aws.String(r.etag)
		}
	}
	r.s.stats.gets.Add(1)
	out, err := r.s.client.GetObject(r.ctx, in)
	if err != nil {
		var apiErr smithy.APIError
		if ranged && r.etag != "" && errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
			return fmt.Errorf("%s: object changed while it was being read (ETag %s): %w", r.op, r.etag, err)
		}
		return r.s.wrapErr(r.op, r.key, err)
	}
	if !ranged {
		r.etag = aws.ToString(out.ETag)
		if out.ContentLength != nil {
			r.size = *out.ContentLength
		}
		if r.listed >= 0 && r.size >= 0 && r.size != r.listed {
			out.Body.Close()
			return fmt.Errorf("%s: the object is %d bytes, not the %d listed (it changed since the listing)", r.op, r.size, r.listed)
		}
		if r.size < 0 {
			// A chunked answer: the listing says where it must end, so
			// that a body broken off cleanly is resumed, not taken as whole.
			r.size = r.listed
		}
	} else if cr := aws.ToString(out.ContentRange); !strings.HasPrefix(cr, fmt.Sprintf("bytes %d-", r.off)) {
		out.Body.Close()
		return fmt.Errorf("%s: asked for bytes from %d, the server answered range %q", r.op, r.off, cr)
	} else if r.etag == "" {
		r.etag = aws.ToString(out.ETag) // a resume of this range asks for the same object
	}
	r.body = out.Body
	return nil
}

func (r *s3Reader) Read(p []byte) (int, error) {
	for {
		if r.body == nil {
			if r.err == nil {
				r.err = fmt.Errorf("%s: read after close", r.op)
			}
			return 0, r.err
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		r.s.stats.bytes.Add(int64(n))
		if n > 0 {
			r.fails = 0
		}
		switch {
		case err == nil:
			return n, nil
		case r.size >= 0 && r.off >= r.size:
			return n, io.EOF // all of it, whatever happened to the connection after
		case err == io.EOF && r.size < 0:
			return n, io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
		if rerr := r.resume(err); rerr != nil {
			r.err = rerr
			if n > 0 {
				return n, nil // the error comes with the next Read
			}
			return 0, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume replaces a broken body, after a short backoff, unless the context
// is done or too many resumes made no progress.
func (r *s3Reader) resume(cause error) error {
	r.body.Close()
	r.body = nil
	if r.ctx.Err() != nil || r.fails >= s3MaxResumes {
		return fmt.Errorf("%s: read at byte %d: %w", r.op, r.off, cause)
	}
	backoff := s3BaseBackoff << r.fails
	r.fails++
	t := time.NewTimer(backoff)
	select {
	case <-t.C:
	case <-r.ctx.Done():
		t.Stop()
		return fmt.Errorf("%s: read at byte %d: %w", r.op, r.off, cause)
	}
	if err := r.get(); err != nil {
		return fmt.Errorf("%s: read at byte %d: %v; resume: %w", r.op, r.off, cause, err)
	}
	return nil
}

func (r *s3Reader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	r.err = fmt.Errorf("%s: read after close", r.op)
	return err
}
