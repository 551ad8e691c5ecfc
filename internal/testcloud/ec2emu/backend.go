package ec2emu

import (
	"context"
	"fmt"
	"time"
)

// Backend boots real guests for RunInstances. It is optional: without one, instances are pure
// state (addresses are still allocated from the subnet).
//
// The emulator calls Launch from a goroutine after RunInstances answered "pending"; the
// instance turns "running" only after Launch returned (and Options.InstanceTiming allows it).
// A Launch error terminates the instance with state reason Server.InternalError.
type Backend interface {
	Launch(ctx context.Context, req LaunchRequest) (BackendInstance, error)
}

// LaunchRequest is everything a guest and its IMDS need to look like an EC2 instance.
type LaunchRequest struct {
	InstanceID string
	ImageID    string
	// ImageRef is the backend's own reference for the image: the ImageRef given to AddImage,
	// or the ref returned by BackendInstance.Snapshot for images made by CreateImage (CopyImage
	// keeps it). Empty for images the backend never saw.
	ImageRef     string
	InstanceType string
	PrivateIP    string // allocated from SubnetCIDR; the guest should use it when it can
	SubnetCIDR   string
	VPCCIDR      string
	SubnetID     string
	VPCID        string
	AccountID    string
	MAC          string
	AZ           string
	Region       string
	Tags         map[string]string
	UserData     []byte // decoded (RunInstances sends base64)
	KeyName      string
	// KeyPublicKey is the launch key in authorized_keys format ("ssh-ed25519 AAAA..."), empty
	// when RunInstances named no key.
	KeyPublicKey string
	// HTTPTokens is "required" for IMDSv2 only, "optional" otherwise.
	HTTPTokens         string
	HopLimit           int
	IAMInstanceProfile string // name or ARN as given
	ShutdownBehavior   string // "stop" or "terminate": what a guest-initiated power-off means
}

// BackendInstance is one running guest. Calls for one instance are serialized by the emulator
// (never concurrent, in API order); each runs outside the emulator's lock.
type BackendInstance interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
	Terminate(ctx context.Context) error
	// Snapshot captures the root filesystem for CreateImage and returns a ref that a later
	// LaunchRequest.ImageRef will carry.
	Snapshot(ctx context.Context) (imageRef string, err error)
	// PrivateIP and PublicIP are the addresses to report; empty keeps the emulator's choice
	// (PublicIP empty falls back to PrivateIP so clients can still connect).
	PrivateIP() string
	PublicIP() string
}

// TagUpdater is optionally implemented by a BackendInstance whose IMDS serves tags: the
// emulator calls it (in API order, outside its lock) with the full tag set after CreateTags or
// DeleteTags changed the instance's tags.
type TagUpdater interface {
	SetTags(tags map[string]string)
}

// ImageReleaser is optionally implemented by a Backend that wants to free an image ref once
// no image or snapshot in any region refers to it any more.
type ImageReleaser interface {
	ReleaseImage(ctx context.Context, imageRef string) error
}

// opQueue serializes backend work per instance. Guarded by Server.mu.
type opQueue struct {
	pending []func(context.Context) func()
	running bool
}

func (q *opQueue) busy() bool { return q.running || len(q.pending) > 0 }

// enqueue runs work outside the lock after earlier work on q; the func it returns is applied
// under the lock. Callers hold s.mu.
func (s *Server) enqueue(q *opQueue, work func(context.Context) func()) {
	if s.ctx.Err() != nil {
		return
	}
	q.pending = append(q.pending, work)
	if q.running {
		return
	}
	q.running = true
	s.activeOps++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.mu.Lock()
			if len(q.pending) == 0 {
				q.running = false
				s.activeOps--
				s.mu.Unlock()
				return
			}
			w := q.pending[0]
			q.pending = q.pending[1:]
			s.mu.Unlock()
			apply := w(s.ctx)
			s.mu.Lock()
			if apply != nil {
				apply()
			}
			s.mu.Unlock()
		}
	}()
}

// backendError records a failed backend call so tests can see it; callers hold s.mu.
func (s *Server) backendError(op, id string, err error) {
	s.backendErrs = append(s.backendErrs, fmt.Errorf("backend %s %s: %w", op, id, err))
}

// BackendErrors returns every error a backend call returned, oldest first.
func (s *Server) BackendErrors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.backendErrs...)
}

// releaseRef tells an ImageReleaser backend that ref is unused; callers hold s.mu.
func (s *Server) releaseRef(ref string) {
	rel, ok := s.opts.Backend.(ImageReleaser)
	if !ok || ref == "" {
		return
	}
	for _, r := range s.regions {
		for _, im := range r.images {
			if im.ref == ref {
				return
			}
		}
		for _, sn := range r.snapshots {
			if sn.ref == ref {
				return
			}
		}
	}
	q := &opQueue{}
	s.enqueue(q, func(ctx context.Context) func() {
		err := rel.ReleaseImage(ctx, ref)
		return func() {
			if err != nil {
				s.backendError("ReleaseImage", ref, err)
			}
		}
	})
}

// WaitIdle blocks until no backend work is queued or running, or ctx ends.
func (s *Server) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		n := s.activeOps
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("backend still busy with %d queues: %w", n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
