package builder

// Volume limits per type (GiB, IOPS, MiB/s) as documented for EBS.
type volumeLimits struct {
	minSize, maxSize int64
	minIOPS, maxIOPS int64 // 0,0: iops cannot be set
	iopsRequired     bool
}

var volumeTypes = map[string]volumeLimits{
	"gp3":      {minSize: 1, maxSize: 65536, minIOPS: 3000, maxIOPS: 80000},
	"gp2":      {minSize: 1, maxSize: 16384},
	"io1":      {minSize: 4, maxSize: 16384, minIOPS: 100, maxIOPS: 64000, iopsRequired: true},
	"io2":      {minSize: 4, maxSize: 65536, minIOPS: 100, maxIOPS: 256000, iopsRequired: true},
	"st1":      {minSize: 125, maxSize: 16384},
	"sc1":      {minSize: 125, maxSize: 16384},
	"standard": {minSize: 1, maxSize: 1024},
}
