package ec2emu

import (
	"fmt"
	"strings"
	"time"
)

// Auto Scaling (Query API, version 2011-01-01): the subset safe scale-in
// needs. Groups hold instances the emulator already runs (AttachInstances;
// no launch templates), termination lifecycle hooks hold a terminating
// instance in Terminating:Wait until CompleteLifecycleAction, or until the
// hook's heartbeat timeout applies its default result; either way the
// instance then terminates (for a termination hook, ABANDON and CONTINUE
// both end in termination, as on AWS).

const autoscalingNamespace = "http://autoscaling.amazonaws.com/doc/2011-01-01/"

const terminatingTransition = "autoscaling:EC2_INSTANCE_TERMINATING"

// hookTimeUnit is a second of HeartbeatTimeout; tests shorten it.
var hookTimeUnit = time.Second

// SetHookTimeUnit makes a second of every lifecycle hook's HeartbeatTimeout
// last d instead (a test knob, for the whole process: an end-to-end drain
// then runs in seconds instead of an hour), and returns the undo. Hooks keep
// the unit they were put with.
func SetHookTimeUnit(d time.Duration) (restore func()) {
	old := hookTimeUnit
	hookTimeUnit = d
	return func() { hookTimeUnit = old }
}

type asGroup struct {
	name              string
	min, max, desired int
	instances         map[string]*asInstance
	hooks             map[string]*asHook
}

type asInstance struct {
	id, az    string
	state     string // InService, Terminating:Wait, Terminating:Proceed, Terminated
	hook      *asHook
	deadline  time.Time
	token     string
	heartbeat int
	timer     *time.Timer
	// outcome is how the termination went on (LifecycleOutcome).
	outcome string
}

type asHook struct {
	name, transition, defaultResult string
	heartbeatTimeout                time.Duration
}

func (r *region) asGroups() map[string]*asGroup {
	if r.autoscaling == nil {
		r.autoscaling = map[string]*asGroup{}
	}
	return r.autoscaling
}

func asErr(format string, args ...any) *apiError {
	return &apiError{Code: "ValidationError", Message: fmt.Sprintf(format, args...), Status: 400}
}

func (s *Server) dispatchAutoScaling(req *request) (any, *apiError) {
	r, p := req.region, req.p
	groups := r.asGroups()
	group := func() (*asGroup, *apiError) {
		g := groups[p.str("AutoScalingGroupName")]
		if g == nil {
			return nil, asErr("AutoScalingGroup name not found - no such group: %s", p.str("AutoScalingGroupName"))
		}
		return g, nil
	}
	switch req.action {
	case "CreateAutoScalingGroup":
		name := p.str("AutoScalingGroupName")
		if name == "" {
			return nil, asErr("AutoScalingGroupName is required")
		}
		if groups[name] != nil {
			return nil, &apiError{Code: "AlreadyExists", Message: "AutoScalingGroup by this name already exists - A group with the name " + name + " already exists", Status: 400}
		}
		minSize, e1 := p.integer("MinSize", 0)
		maxSize, e2 := p.integer("MaxSize", 0)
		desired, e3 := p.integer("DesiredCapacity", minSize)
		for _, e := range []*apiError{e1, e2, e3} {
			if e != nil {
				return nil, e
			}
		}
		if minSize > maxSize || desired < minSize || desired > maxSize {
			return nil, asErr("Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, minSize, maxSize)
		}
		groups[name] = &asGroup{name: name, min: minSize, max: maxSize, desired: desired, instances: map[string]*asInstance{}, hooks: map[string]*asHook{}}
		return "", nil
	case "AttachInstances":
		g, e := group()
		if e != nil {
			return nil, e
		}
		for _, id := range p.list("InstanceIds.member") {
			in := r.instances[id]
			if in == nil || in.state != "running" {
				return nil, asErr("Instance %s is not in a running state", id)
			}
			if og, _ := findASInstance(groups, id); og != nil && og != g {
				return nil, asErr("The instance %s is already part of the Auto Scaling group %s", id, og.name)
			}
			if g.instances[id] == nil {
				g.instances[id] = &asInstance{id: id, az: in.az, state: "InService"}
				g.desired++
				if g.desired > g.max {
					g.max = g.desired
				}
			}
		}
		return "", nil
	case "PutLifecycleHook":
		g, e := group()
		if e != nil {
			return nil, e
		}
		name := p.str("LifecycleHookName")
		tr := p.str("LifecycleTransition")
		if name == "" || (tr != terminatingTransition && tr != "autoscaling:EC2_INSTANCE_LAUNCHING") {
			return nil, asErr("LifecycleHookName and a LifecycleTransition (autoscaling:EC2_INSTANCE_LAUNCHING or %s) are required", terminatingTransition)
		}
		hb, e := p.integer("HeartbeatTimeout", 3600)
		if e != nil {
			return nil, e
		}
		if hb < 30 || hb > 7200 {
			return nil, asErr("Heartbeat timeout %d must be between 30 and 7200 seconds", hb)
		}
		def := p.str("DefaultResult")
		if def == "" {
			def = "ABANDON"
		}
		if def != "CONTINUE" && def != "ABANDON" {
			return nil, asErr("Valid values for DefaultResult are CONTINUE and ABANDON")
		}
		g.hooks[name] = &asHook{name: name, transition: tr, defaultResult: def, heartbeatTimeout: time.Duration(hb) * hookTimeUnit}
		return "", nil
	case "DeleteLifecycleHook":
		g, e := group()
		if e != nil {
			return nil, e
		}
		name := p.str("LifecycleHookName")
		if g.hooks[name] == nil {
			return nil, asErr("No Lifecycle Hook found with name %s for group %s", name, g.name)
		}
		// Instances already waiting on it keep their lifecycle action.
		delete(g.hooks, name)
		return "", nil
	case "DescribeLifecycleHooks":
		g, e := group()
		if e != nil {
			return nil, e
		}
		want := p.list("LifecycleHookNames.member")
		var b strings.Builder
		b.WriteString("<LifecycleHooks>")
		for _, name := range sortedKeys(g.hooks) {
			h := g.hooks[name]
			if len(want) > 0 && !contains(want, name) {
				continue
			}
			hb := int(h.heartbeatTimeout / hookTimeUnit)
			fmt.Fprintf(&b, "<member><LifecycleHookName>%s</LifecycleHookName><AutoScalingGroupName>%s</AutoScalingGroupName><LifecycleTransition>%s</LifecycleTransition><HeartbeatTimeout>%d</HeartbeatTimeout><GlobalTimeout>%d</GlobalTimeout><DefaultResult>%s</DefaultResult></member>",
				xmlEscape(h.name), xmlEscape(g.name), h.transition, hb, min(100*hb, 172800), h.defaultResult)
		}
		b.WriteString("</LifecycleHooks>")
		return b.String(), nil
	case "DescribeAutoScalingInstances":
		ids := p.list("InstanceIds.member")
		var b strings.Builder
		b.WriteString("<AutoScalingInstances>")
		for _, gn := range sortedKeys(groups) {
			g := groups[gn]
			for _, id := range sortedKeys(g.instances) {
				ai := g.instances[id]
				if (len(ids) > 0 && !contains(ids, id)) || ai.state == "Terminated" {
					continue
				}
				fmt.Fprintf(&b, "<member><InstanceId>%s</InstanceId><AutoScalingGroupName>%s</AutoScalingGroupName><AvailabilityZone>%s</AvailabilityZone><LifecycleState>%s</LifecycleState><HealthStatus>HEALTHY</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>",
					id, xmlEscape(g.name), ai.az, ai.state)
			}
		}
		b.WriteString("</AutoScalingInstances>")
		return b.String(), nil
	case "TerminateInstanceInAutoScalingGroup":
		id := p.str("InstanceId")
		g, ai := findASInstance(groups, id)
		if ai == nil {
			return nil, asErr("Instance Id not found - No managed instance found for instance ID: %s", id)
		}
		if p.boolean("ShouldDecrementDesiredCapacity") {
			if g.desired-1 < g.min {
				return nil, asErr("Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.min)
			}
			g.desired--
		}
		if ai.state != "InService" {
			return activityXML(req, g, id, "already "+ai.state), nil
		}
		s.startTermination(r, g, ai, req.now)
		return activityXML(req, g, id, "Terminating EC2 instance: "+id), nil
	case "RecordLifecycleActionHeartbeat", "CompleteLifecycleAction":
		g, e := group()
		if e != nil {
			return nil, e
		}
		h := g.hooks[p.str("LifecycleHookName")]
		if h == nil {
			return nil, asErr("No Lifecycle Hook found with name %s for group %s", p.str("LifecycleHookName"), g.name)
		}
		var ai *asInstance
		if id := p.str("InstanceId"); id != "" {
			ai = g.instances[id]
		} else if tok := p.str("LifecycleActionToken"); tok != "" {
			for _, x := range g.instances {
				if x.token == tok {
					ai = x
				}
			}
		}
		if ai == nil || ai.hook != h || ai.state != "Terminating:Wait" {
			return nil, asErr("No active Lifecycle Action found with instance ID %s", p.str("InstanceId"))
		}
		if req.action == "RecordLifecycleActionHeartbeat" {
			ai.heartbeat++
			s.armHook(r, g, ai, req.now)
			return "", nil
		}
		res := p.str("LifecycleActionResult")
		if res != "CONTINUE" && res != "ABANDON" {
			return nil, asErr("Valid values for LifecycleActionResult are CONTINUE and ABANDON")
		}
		ai.outcome = "completed:" + res
		s.finishTermination(r, g, ai, req.now)
		return "", nil
	}
	return nil, errf("InvalidAction", "Could not find operation %s for version 2011-01-01 (not implemented by the emulator)", req.action)
}

func activityXML(req *request, g *asGroup, id, desc string) string {
	return fmt.Sprintf("<Activity><ActivityId>%s</ActivityId><AutoScalingGroupName>%s</AutoScalingGroupName><Description>%s</Description><Cause>At %s instance %s was taken out of service in response to a user request.</Cause><StartTime>%s</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress></Activity>",
		newRequestID(), xmlEscape(g.name), xmlEscape(desc), req.now.UTC().Format(time.RFC3339), id, req.now.UTC().Format(time.RFC3339))
}

func findASInstance(groups map[string]*asGroup, id string) (*asGroup, *asInstance) {
	for _, g := range groups {
		if ai := g.instances[id]; ai != nil && ai.state != "Terminated" {
			return g, ai
		}
	}
	return nil, nil
}

// startTermination moves the instance to Terminating:Wait under the
// group's first termination hook, or terminates it at once without one.
// Called with s.mu held.
func (s *Server) startTermination(r *region, g *asGroup, ai *asInstance, now time.Time) {
	for _, name := range sortedKeys(g.hooks) {
		if h := g.hooks[name]; h.transition == terminatingTransition {
			ai.state, ai.hook, ai.token = "Terminating:Wait", h, newRequestID()
			s.armHook(r, g, ai, now)
			return
		}
	}
	ai.outcome = "no-hook"
	s.finishTermination(r, g, ai, now)
}

// armHook (re)starts the heartbeat timeout; when it passes, the default
// result applies: the instance terminates.
func (s *Server) armHook(r *region, g *asGroup, ai *asInstance, now time.Time) {
	ai.deadline = now.Add(ai.hook.heartbeatTimeout)
	if ai.timer != nil {
		ai.timer.Stop()
	}
	deadline := ai.deadline
	ai.timer = time.AfterFunc(ai.hook.heartbeatTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ai.state == "Terminating:Wait" && ai.deadline.Equal(deadline) {
			ai.outcome = "timeout:" + ai.hook.defaultResult
			s.finishTermination(r, g, ai, s.now())
		}
	})
}

// finishTermination terminates the EC2 instance. Called with s.mu held.
func (s *Server) finishTermination(r *region, g *asGroup, ai *asInstance, now time.Time) {
	if ai.timer != nil {
		ai.timer.Stop()
	}
	ai.state = "Terminated"
	if in := r.instances[ai.id]; in != nil && in.state != "terminated" && in.state != "shutting-down" {
		s.terminateInstance(r, in, now)
	}
}

// TargetLifecycleState is what IMDS answers at
// autoscaling/target-lifecycle-state for the instance: InService, or
// Terminated once a scale-in chose it; "" when it is in no group.
func (s *Server) TargetLifecycleState(instanceID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regions {
		if r.autoscaling == nil {
			continue
		}
		for _, g := range r.autoscaling {
			if ai := g.instances[instanceID]; ai != nil {
				if ai.state == "InService" {
					return "InService"
				}
				return "Terminated"
			}
		}
	}
	return ""
}

// LifecycleOutcome says how the instance's termination went on (tests):
// "completed:CONTINUE" (or ABANDON) by CompleteLifecycleAction,
// "timeout:<default result>" when the hook's heartbeat timeout passed,
// "no-hook" without a termination hook, "" while it waits or in service.
func (s *Server) LifecycleOutcome(instanceID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regions {
		for _, g := range r.autoscaling {
			if ai := g.instances[instanceID]; ai != nil {
				return ai.outcome
			}
		}
	}
	return ""
}

// LifecycleHeartbeats counts the heartbeats recorded for the instance's
// current lifecycle action (tests).
func (s *Server) LifecycleHeartbeats(instanceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regions {
		for _, g := range r.autoscaling {
			if ai := g.instances[instanceID]; ai != nil {
				return ai.heartbeat
			}
		}
	}
	return 0
}
