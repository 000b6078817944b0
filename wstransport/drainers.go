package wstransport

import "sync"

// maxDrainers bounds the goroutines sending subscriptions' ready values.
// A fan-out wakes thousands of subscriptions at once: a goroutine each
// would mean thousands of goroutines created (and their stacks grown
// through gqlgen's call chain) per object, and the runtime keeps every
// goroutine it ever had at once (allgs), so each burst would leave a few
// hundred bytes per subscriber behind for good. A write that blocks (a
// client that stopped reading) holds its drainer for at most the write
// timeout; 256 of them let that many stall at once before others wait.
const maxDrainers = 256

// drainers runs operations' drains, in the order they were woken, on at
// most maxDrainers goroutines; a goroutine ends when nothing is waiting,
// so an idle server keeps none.
type drainers struct {
	mu      sync.Mutex
	queue   []*op
	running int
}

// submit queues o's drain, starting a drainer if there is room for one.
func (d *drainers) submit(o *op) {
	d.mu.Lock()
	d.queue = append(d.queue, o)
	start := d.running < maxDrainers
	if start {
		d.running++
	}
	d.mu.Unlock()
	if start {
		go d.run()
	}
}

// run drains queued operations until none is left.
func (d *drainers) run() {
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.running--
			d.queue = nil // a burst's backing array goes with it
			d.mu.Unlock()
			return
		}
		o := d.queue[0]
		d.queue[0] = nil
		d.queue = d.queue[1:]
		d.mu.Unlock()
		o.drain()
	}
}
