package main

import (
	"fmt"
	"strconv"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// override is one change the demo makes to a block decoded from the
// example, so the same template runs on the local cloud. Why says why.
type override struct {
	Path  []string // attribute path; a number indexes a list of blocks
	Value cty.Value
	Why   string
}

// apply sets every override on v (a decoded HCL2 block) and prints it.
func apply(block string, v cty.Value, ovs []override) (cty.Value, error) {
	for _, o := range ovs {
		nv, err := setPath(v, o.Path, o.Value)
		if err != nil {
			return v, fmt.Errorf("override %s %v: %w", block, o.Path, err)
		}
		v = nv
		fmt.Printf("    override %s.%s = %s  (%s)\n", block, joinPath(o.Path), show(o.Value), o.Why)
	}
	return v, nil
}

func joinPath(p []string) string {
	s := ""
	for i, e := range p {
		if _, err := strconv.Atoi(e); err == nil {
			s += "[" + e + "]"
			continue
		}
		if i > 0 {
			s += "."
		}
		s += e
	}
	return s
}

func show(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case v.Type() == cty.String:
		s := v.AsString()
		if len(s) > 40 {
			s = s[:16] + "..." + s[len(s)-8:]
		}
		return strconv.Quote(s)
	case v.Type() == cty.Number:
		return v.AsBigFloat().String()
	case v.Type() == cty.Bool:
		return strconv.FormatBool(v.True())
	}
	return v.GoString()
}

// setPath returns v with the value at path replaced by nv, converted to the
// type the plugin's spec declares there. A null block on the way becomes an
// object of null attributes.
func setPath(v cty.Value, path []string, nv cty.Value) (cty.Value, error) {
	ty := v.Type()
	switch {
	case ty.IsObjectType():
		name := path[0]
		if !ty.HasAttribute(name) {
			return v, fmt.Errorf("the plugin's spec has no %q", name)
		}
		attrs := map[string]cty.Value{}
		if v.IsNull() {
			for n, t := range ty.AttributeTypes() {
				attrs[n] = cty.NullVal(t)
			}
		} else {
			attrs = v.AsValueMap()
		}
		at := ty.AttributeType(name)
		if len(path) == 1 {
			c, err := convert.Convert(nv, at)
			if err != nil {
				return v, err
			}
			attrs[name] = c
		} else {
			c, err := setPath(attrs[name], path[1:], nv)
			if err != nil {
				return v, err
			}
			attrs[name] = c
		}
		return cty.ObjectVal(attrs), nil
	case ty.IsListType() || ty.IsTupleType():
		i, err := strconv.Atoi(path[0])
		if err != nil {
			return v, fmt.Errorf("%q indexes a list", path[0])
		}
		if v.IsNull() || i >= v.LengthInt() {
			return v, fmt.Errorf("no element %d", i)
		}
		elems := v.AsValueSlice()
		if len(path) == 1 {
			c, err := convert.Convert(nv, elems[i].Type())
			if err != nil {
				return v, err
			}
			elems[i] = c
		} else {
			c, err := setPath(elems[i], path[1:], nv)
			if err != nil {
				return v, err
			}
			elems[i] = c
		}
		if ty.IsListType() {
			return cty.ListVal(elems), nil
		}
		return cty.TupleVal(elems), nil
	}
	return v, fmt.Errorf("cannot descend into %s", ty.FriendlyName())
}
