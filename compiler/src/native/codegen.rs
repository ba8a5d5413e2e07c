//! The code generator: one JIT module per ruleset, functions
//! `evaluate_K(ctx, bits) -> u32` in it, each for a chunk of [`CHUNK`]
//! rules, which the host calls in order until one returns 1. Shaped like
//! cranelift-jit-demo: [`Jit`] owns the module, [`Translator`] walks the
//! rules with a `FunctionBuilder`. The chunks' functions are built and
//! compiled on several threads ([`Work`]) and defined in the module in
//! chunk order: the generated code does not depend on thread timing.
//!
//! Per rule, in evaluation order:
//!
//! ```text
//! begin(ctx, rule)
//! if <condition, short-circuit; leaves call test(ctx, leaf), or read
//!     the prefilter's answer for those it decides>
//!     { if then(ctx, rule) != 0 { return 1 } }
//! else if <the rule has an else block>
//!     { if else(ctx, rule) != 0 { return 1 } }
//! ```
//!
//! and `return 0` after the last rule of the chunk. A leaf the prefilter
//! decides reads its byte in the `bits` table (0: not known yet, 1: false,
//! 2: true) and calls `bit(ctx, leaf)` for its truth unless it is 1; a
//! leaf that holds when a value passed it ([`Answer::Scanned`]) is true
//! when its byte is 2, else false once its group's byte says the group
//! was scanned, else asks `bit`. A
//! *quiet* rule (every test decided by the prefilter, no `else` block)
//! needs the host only when its condition holds, so its `begin` moves into
//! that branch, as one call `fire` (`begin`, then `then`):
//!
//! ```text
//! if <condition, bits only> { if fire(ctx, rule) != 0 { return 1 } }
//! ```
//!
//! Skipping `begin` (and `else`, which without a block does nothing
//! outside `--explain`) for a quiet rule that fails changes nothing the
//! interpreter could observe: the prefilter's bits read no rule state, and
//! the one effect of `begin` that outlives the rule, the latest stage
//! reached, the host adds after the run (`NativeRuleset::evaluate`).
//! `--explain` evaluations, which trace every rule, run in the interpreter.
//!
//! Layout: every call sits in a cold block that Cranelift places after the
//! function's hot path, so the rules most messages run through are three
//! instructions each (load a byte, compare with "false", branch), one
//! after another. Few blocks per rule also keep Cranelift's register
//! allocation, most of the compile time, short.
//!
//! A run of quiet rules whose conditions have triggers, a *skip*
//! (`skip.rs`), is preceded by one test that jumps past it when its byte
//! says none of its rules can hold.
//!
//! The code never traps: its memory accesses are those bytes, at a leaf's
//! index, a group's (after the leaves), a skip's (after the groups) or the
//! every-group byte in a table the host sizes to all of them; it has no division or jump table.

use std::sync::OnceLock;

use std::sync::atomic::{AtomicUsize, Ordering};

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    AbiParam, Block, FuncRef, Function, InstBuilder, MemFlagsData, UserFuncName, Value,
    condcodes::IntCC, types,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, ModuleReloc, default_libcall_names};

use super::NativeError;
use super::cond::Cond;
use super::host::HostFunctions;
use super::prefilter::Answer;
use super::skip::{Skip, Skips};

/// The host's instruction set, built once per process.
fn isa() -> Result<OwnedTargetIsa, NativeError> {
    static ISA: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    ISA.get_or_init(|| {
        let mut flags = settings::builder();
        // cranelift-jit needs absolute, long-range calls to host functions.
        // The code is calls and branches only: optimizing it gains nothing
        // measurable and slows every (re)load.
        // The single-pass register allocator: the backtracking one was a
        // fifth of a 10,000-rule (re)load's CPU. The only values live
        // across blocks are the two arguments, which it reloads from the
        // stack in each block: about 3 % more CPU evaluating with 10,000
        // rules (benches/README.md, "Compile time at 10,000 rules, round
        // four").
        // The IR verifier re-checks every function the translator built:
        // on in debug builds (every test), off in release, where it was a
        // tenth of a 10,000-rule (re)load.
        let verifier = if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        };
        for (name, value) in [
            ("use_colocated_libcalls", "false"),
            ("is_pic", "false"),
            ("opt_level", "none"),
            ("regalloc_algorithm", "single_pass"),
            ("enable_verifier", verifier),
        ] {
            flags.set(name, value).map_err(|e| e.to_string())?;
        }
        let builder = cranelift_native::builder().map_err(str::to_string)?;
        builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(NativeError::Unsupported)
}

/// A module being built, with the host functions declared in it.
pub(crate) struct Jit {
    module: JITModule,
    /// The instruction set, which (unlike the module) threads can share.
    isa: OwnedTargetIsa,
    /// Host function ids, in [`HostFunctions::all`] order.
    host: [FuncId; 6],
}

/// One compiled ruleset's code: the module (to free it) and the entry
/// points, one per chunk of rules, to call in order.
pub(crate) struct Compiled {
    pub module: JITModule,
    pub entries: Vec<*const u8>,
}

/// What the code of one rule needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct RulePlan {
    /// Its condition (`None`: no `when`, it always holds).
    pub cond: Option<Cond>,
    /// Whether it has an `else` block.
    pub otherwise: bool,
}

impl RulePlan {
    /// Whether the rule is *quiet*: no `else` block and every test
    /// answered by the prefilter (`answer`), so that it needs the host
    /// only when its condition holds.
    pub(crate) fn quiet(&self, answer: &dyn Fn(u32) -> Answer) -> bool {
        !self.otherwise
            && self
                .cond
                .as_ref()
                .is_none_or(|c| c.all_leaves(&|leaf| answer(leaf) != Answer::Host))
    }
}

/// Rules per generated function. One function for 10,000 rules made
/// Cranelift hold every block of the ruleset at once (hundreds of MB at
/// peak, superlinear register allocation); chunks keep each function
/// small and its compile-time memory reused.
pub(crate) const CHUNK: usize = 256;

impl Jit {
    /// A fresh module for one ruleset.
    pub(crate) fn new() -> Result<Jit, NativeError> {
        let isa = isa()?;
        let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
        let table = HostFunctions::get();
        for f in table.all() {
            builder.symbol(f.name, f.address);
        }
        let mut module = JITModule::new(builder);
        let ptr = module.target_config().pointer_type();
        let mut host = Vec::with_capacity(6);
        for f in table.all() {
            let mut sig = module.make_signature();
            sig.params.push(AbiParam::new(ptr));
            sig.params.push(AbiParam::new(types::I32));
            if f.returns_u8 {
                sig.returns.push(AbiParam::new(types::I8));
            }
            let id = module
                .declare_function(f.name, Linkage::Import, &sig)
                .map_err(|e| NativeError::Codegen(e.to_string()))?;
            host.push(id);
        }
        let host = host
            .try_into()
            .map_err(|_| NativeError::Codegen("host table".into()))?;
        Ok(Jit { module, isa, host })
    }

    /// Compiles the whole ruleset (one plan per rule, in evaluation
    /// order) and makes it executable. `answer(leaf)` tells how the code
    /// learns each leaf's truth; `skips` are the runs of rules it may pass
    /// over (`skip.rs`), in order, none across a chunk of [`CHUNK`].
    pub(crate) fn compile(
        mut self,
        rules: &[RulePlan],
        answer: &(dyn Fn(u32) -> Answer + Sync),
        skips: &Skips,
    ) -> Result<Compiled, NativeError> {
        match self.emit(rules, answer, skips) {
            Ok(ids) => {
                let entries = ids
                    .into_iter()
                    .map(|id| self.module.get_finalized_function(id))
                    .collect();
                Ok(Compiled {
                    module: self.module,
                    entries,
                })
            }
            Err(e) => {
                // SAFETY: nothing of this module was ever called (and no
                // pointer into it escaped), so its memory can go now
                // rather than leak on every refused (re)load.
                unsafe { self.module.free_memory() };
                Err(e)
            }
        }
    }

    /// Declares, compiles, defines and finalizes the functions, one per
    /// chunk of [`CHUNK`] rules. The chunks compile on up to
    /// [`MAX_THREADS`] threads ([`Work::compile_all`]); the module, which
    /// cannot cross threads, then takes their machine code in chunk order,
    /// so the result does not depend on which thread compiled what.
    fn emit(
        &mut self,
        rules: &[RulePlan],
        answer: &(dyn Fn(u32) -> Answer + Sync),
        skips: &Skips,
    ) -> Result<Vec<FuncId>, NativeError> {
        let err = |e: &dyn std::fmt::Display| NativeError::Codegen(e.to_string());
        let ptr = self.module.target_config().pointer_type();
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(ptr));
        sig.returns.push(AbiParam::new(types::I32));
        // At least one function, so an empty ruleset has an entry too.
        let chunks: Vec<&[RulePlan]> = if rules.is_empty() {
            vec![rules]
        } else {
            rules.chunks(CHUNK).collect()
        };
        let ids = (0..chunks.len())
            .map(|k| {
                self.module
                    .declare_function(&format!("weir_evaluate_{k}"), Linkage::Local, &sig)
                    .map_err(|e| err(&e))
            })
            .collect::<Result<Vec<FuncId>, _>>()?;
        // Every function starts as a copy of this one: the signature and
        // the host functions imported, in the same order, so each has the
        // same `FuncRef`s.
        let mut template = Function::with_name_signature(UserFuncName::default(), sig);
        let host = self
            .host
            .map(|id| self.module.declare_func_in_func(id, &mut template));
        let work = Work {
            isa: &*self.isa,
            template: &template,
            host,
            chunks: &chunks,
            ids: &ids,
            answer,
            skips,
        };
        for (id, code) in ids.iter().zip(work.compile_all()?) {
            self.module
                .define_function_bytes(*id, code.alignment, &code.bytes, &code.relocs)
                .map_err(|e| err(&e))?;
        }
        // Fails where the host refuses executable memory (W^X policies).
        self.module
            .finalize_definitions()
            .map_err(|e| NativeError::ExecutableMemory(format!("{e:#}")))?;
        Ok(ids)
    }
}

/// The stack of a thread compiling chunks: Linux's default for a main
/// thread, which compiled them all before.
const CODEGEN_STACK: usize = 8 << 20;

/// What every thread compiling chunks shares; nothing in it is written.
struct Work<'a> {
    isa: &'a dyn TargetIsa,
    /// The signature and host imports every function starts from.
    template: &'a Function,
    /// The host functions' references in `template` (and its copies), in
    /// [`HostFunctions::all`] order.
    host: [FuncRef; 6],
    chunks: &'a [&'a [RulePlan]],
    /// The declared function of each chunk.
    ids: &'a [FuncId],
    /// How the code learns a leaf's truth.
    answer: &'a (dyn Fn(u32) -> Answer + Sync),
    /// The runs of rules the code may pass over.
    skips: &'a Skips,
}

/// One chunk's finished machine code, for `define_function_bytes`.
struct ChunkCode {
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
}

impl Work<'_> {
    /// Compiles every chunk, on this thread and up to
    /// [`crate::threads::compile_threads`] - 1 others, each taking the
    /// next chunk not yet taken. The results come back in chunk order, and
    /// the first error in that order is the one reported: thread timing
    /// changes neither.
    fn compile_all(&self) -> Result<Vec<ChunkCode>, NativeError> {
        let threads = crate::threads::compile_threads().min(self.chunks.len());
        let next = AtomicUsize::new(0);
        let worker = || {
            let mut ctx = Context::new();
            let mut fctx = FunctionBuilderContext::new();
            let mut done = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= self.chunks.len() {
                    return done;
                }
                done.push((k, self.chunk(k, &mut ctx, &mut fctx)));
            }
        };
        let mut done = std::thread::scope(|s| {
            // A thread the system refuses leaves its chunks to the others.
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .stack_size(CODEGEN_STACK)
                        .spawn_scoped(s, worker)
                        .ok()
                })
                .collect();
            let mut done = worker();
            for helper in helpers {
                // A panic in Cranelift goes on to the caller's
                // `catch_unwind`, as it would on one thread.
                match helper.join() {
                    Ok(more) => done.extend(more),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            done
        });
        done.sort_unstable_by_key(|(k, _)| *k);
        done.into_iter().map(|(_, code)| code).collect()
    }

    /// Builds chunk `k`'s function and compiles it to machine code.
    fn chunk(
        &self,
        k: usize,
        ctx: &mut Context,
        fctx: &mut FunctionBuilderContext,
    ) -> Result<ChunkCode, NativeError> {
        let err = |e: &dyn std::fmt::Display| NativeError::Codegen(e.to_string());
        let id = self.ids[k];
        ctx.clear();
        ctx.func = self.template.clone();
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        self.translate(k, &mut ctx.func, fctx)?;
        let alignment = ctx
            .compile(self.isa, &mut ControlPlane::default())
            .map_err(|e| err(&e.inner))?
            .buffer
            .alignment;
        let code = ctx
            .compiled_code()
            .ok_or_else(|| NativeError::Codegen("no code compiled".into()))?;
        Ok(ChunkCode {
            bytes: code.code_buffer().to_vec(),
            alignment: u64::from(alignment),
            relocs: code
                .buffer
                .relocs()
                .iter()
                .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
                .collect(),
        })
    }

    /// Emits chunk `k`'s rules into `func`, a copy of the template.
    fn translate(
        &self,
        k: usize,
        func: &mut Function,
        fctx: &mut FunctionBuilderContext,
    ) -> Result<(), NativeError> {
        let mut b = FunctionBuilder::new(func, fctx);
        let [begin, test, bit, then, otherwise, fire] = self.host;
        let start = b.create_block();
        b.append_block_params_for_function_params(start);
        b.switch_to_block(start);
        let ctx_ptr = b.block_params(start)[0];
        let bits = b.block_params(start)[1];
        let ended = b.create_block();
        b.set_cold_block(ended);
        let mut t = Translator {
            b,
            ctx: ctx_ptr,
            bits,
            begin,
            test,
            bit,
            fire,
            answer: self.answer,
            then,
            otherwise,
            ended,
        };
        self.rules(k, &mut t)?;
        let done = t.b.ins().iconst(types::I32, 0);
        t.b.ins().return_(&[done]);
        t.b.switch_to_block(t.ended);
        let one = t.b.ins().iconst(types::I32, 1);
        t.b.ins().return_(&[one]);
        t.b.seal_all_blocks();
        t.b.finalize(self.isa.frontend_config());
        Ok(())
    }
    /// Emits chunk `k`'s rules, each skip's test before its rules.
    fn rules(&self, k: usize, t: &mut Translator<'_>) -> Result<(), NativeError> {
        let first = k * CHUNK;
        let rules = self.chunks[k];
        let id = |index: usize| {
            u32::try_from(first + index).map_err(|e| NativeError::Codegen(e.to_string()))
        };
        let runs = &self.skips.runs;
        let mut skips = runs[runs.partition_point(|s| s.first < first)..]
            .iter()
            .peekable();
        let mut index = 0;
        while index < rules.len() {
            let Some(skip) = skips.next_if(|s| s.first == first + index) else {
                t.rule(id(index)?, &rules[index]);
                index += 1;
                continue;
            };
            let end = (index + skip.len).min(rules.len());
            let past = t.skip(skip, self.skips.every_group);
            for (i, rule) in rules.iter().enumerate().take(end).skip(index) {
                t.rule(id(i)?, rule);
            }
            t.b.ins().jump(past, &[]);
            t.b.switch_to_block(past);
            index = end;
        }
        Ok(())
    }
}

/// Emits the code of one function, rule by rule.
struct Translator<'f> {
    b: FunctionBuilder<'f>,
    ctx: Value,
    /// The `bits` argument: the prefilter's answers by leaf id.
    bits: Value,
    begin: FuncRef,
    test: FuncRef,
    /// Reads a prefilter answer instead of `test`.
    bit: FuncRef,
    /// `begin` and `then` of a quiet rule, in one call.
    fire: FuncRef,
    /// How the code learns a leaf's truth.
    answer: &'f (dyn Fn(u32) -> Answer + Sync),
    then: FuncRef,
    otherwise: FuncRef,
    /// The block that returns 1 (a verdict or `stop` ended evaluation).
    ended: Block,
}

impl Translator<'_> {
    /// One rule; leaves the builder in the block that goes on to the next.
    fn rule(&mut self, id: u32, plan: &RulePlan) {
        // Quiet: it needs the host only when its condition holds.
        let quiet = plan.quiet(self.answer);
        if !quiet {
            let rule = self.rule_id(id);
            self.b.ins().call(self.begin, &[self.ctx, rule]);
        }
        let held = self.cold_block();
        let next = self.b.create_block();
        let failed = if plan.otherwise {
            self.cold_block()
        } else {
            next
        };
        match &plan.cond {
            Some(c) => self.cond(c, held, failed),
            None => {
                self.b.ins().jump(held, &[]);
            }
        }
        // The rule id is made where it is used, so the hot path does not
        // carry it.
        self.b.switch_to_block(held);
        let rule = self.rule_id(id);
        let callee = if quiet { self.fire } else { self.then };
        self.call_and_end(callee, rule, next);
        if plan.otherwise {
            self.b.switch_to_block(failed);
            let rule = self.rule_id(id);
            self.call_and_end(self.otherwise, rule, next);
        }
        self.b.switch_to_block(next);
    }

    /// The test of `skip`: jumps past its rules when its byte is not 2
    /// and every group of its triggers is scanned (as every group is once
    /// the byte `every_group` is 1), else walks them. Leaves the builder
    /// in the block that walks them; returns the block past them.
    fn skip(&mut self, skip: &Skip, every_group: u32) -> Block {
        let walk = self.b.create_block();
        let past = self.b.create_block();
        // Offsets beyond an `i32` (never in practice): always walk.
        let offset = |byte: u32| i32::try_from(byte).ok();
        let groups: Option<Vec<i32>> = skip.groups.iter().map(|&g| offset(g)).collect();
        match (offset(skip.byte), offset(every_group), groups) {
            (Some(byte), Some(every_group), Some(groups)) => {
                self.skip_test(byte, every_group, &groups, walk, past);
            }
            _ => {
                self.b.ins().jump(walk, &[]);
            }
        }
        self.b.switch_to_block(walk);
        past
    }

    /// Jumps to `walk` if the byte at `byte` is 2, else to `past` if the
    /// byte at `every_group` or every one at `groups` is set, else to
    /// `walk`.
    fn skip_test(&mut self, byte: i32, every_group: i32, groups: &[i32], walk: Block, past: Block) {
        let woken = self.load_byte(byte);
        let woken = self.b.ins().icmp_imm_u(IntCC::Equal, woken, 2);
        let asleep = self.b.create_block();
        self.b.ins().brif(woken, walk, &[], asleep, &[]);
        self.b.switch_to_block(asleep);
        let mut check = self.b.create_block();
        let every = self.load_byte(every_group);
        self.b.ins().brif(every, past, &[], check, &[]);
        for &group in groups {
            self.b.switch_to_block(check);
            check = self.b.create_block();
            let scanned = self.load_byte(group);
            self.b.ins().brif(scanned, check, &[], walk, &[]);
        }
        self.b.switch_to_block(check);
        self.b.ins().jump(past, &[]);
    }

    /// The constant `id`, as the host functions take it.
    fn rule_id(&mut self, id: u32) -> Value {
        self.b.ins().iconst(types::I32, i64::from(id))
    }

    /// Calls `callee(ctx, rule)`; ends evaluation if it returns nonzero,
    /// else jumps to `next`.
    fn call_and_end(&mut self, callee: FuncRef, rule: Value, next: Block) {
        let call = self.b.ins().call(callee, &[self.ctx, rule]);
        let end = self.b.inst_results(call)[0];
        self.b.ins().brif(end, self.ended, &[], next, &[]);
    }

    /// A block placed after the hot path.
    fn cold_block(&mut self) -> Block {
        let block = self.b.create_block();
        self.b.set_cold_block(block);
        block
    }

    /// Jumps to `yes` if `c` holds, else to `no`, short-circuiting.
    fn cond(&mut self, c: &Cond, yes: Block, no: Block) {
        match c {
            Cond::Const(true) => {
                self.b.ins().jump(yes, &[]);
            }
            Cond::Const(false) => {
                self.b.ins().jump(no, &[]);
            }
            Cond::Not(inner) => self.cond(inner, no, yes),
            Cond::And(a, b) => {
                let rhs = self.b.create_block();
                self.cond(a, rhs, no);
                self.b.switch_to_block(rhs);
                self.cond(b, yes, no);
            }
            Cond::Or(a, b) => {
                let rhs = self.b.create_block();
                self.cond(a, yes, rhs);
                self.b.switch_to_block(rhs);
                self.cond(b, yes, no);
            }
            Cond::Leaf(id) => match (self.answer)(*id) {
                Answer::Host => self.call_leaf(self.test, *id, yes, no),
                Answer::Byte => self.byte_leaf(*id, yes, no),
                Answer::Scanned { scanned } => self.scanned_leaf(*id, scanned, yes, no),
            },
        }
    }

    /// Loads the answer table's byte at `index`.
    fn load_byte(&mut self, index: i32) -> Value {
        self.b
            .ins()
            .load(types::I8, MemFlagsData::trusted(), self.bits, index)
    }

    /// A leaf read in its byte ([`Answer::Byte`]).
    fn byte_leaf(&mut self, id: u32, yes: Block, no: Block) {
        let Ok(offset) = i32::try_from(id) else {
            return self.call_leaf(self.bit, id, yes, no);
        };
        // Most tests fail: "known false" (1) is the hot path; the host
        // answers the rest (known true, or not known yet).
        let ask = self.cold_block();
        let byte = self.load_byte(offset);
        let failed = self.b.ins().icmp_imm_u(IntCC::Equal, byte, 1);
        self.b.ins().brif(failed, no, &[], ask, &[]);
        self.b.switch_to_block(ask);
        self.call_leaf(self.bit, id, yes, no);
    }

    /// A leaf true once a value of its group passed it
    /// ([`Answer::Scanned`]), its group's byte at `scanned`.
    fn scanned_leaf(&mut self, id: u32, scanned: u32, yes: Block, no: Block) {
        let (Ok(offset), Ok(group)) = (i32::try_from(id), i32::try_from(scanned)) else {
            return self.call_leaf(self.bit, id, yes, no);
        };
        // Hot path: not passed (not 2), group scanned: false.
        let ask = self.cold_block();
        let not_passed = self.b.create_block();
        let byte = self.load_byte(offset);
        let passed = self.b.ins().icmp_imm_u(IntCC::Equal, byte, 2);
        self.b.ins().brif(passed, yes, &[], not_passed, &[]);
        self.b.switch_to_block(not_passed);
        let flag = self.load_byte(group);
        self.b.ins().brif(flag, no, &[], ask, &[]);
        self.b.switch_to_block(ask);
        self.call_leaf(self.bit, id, yes, no);
    }

    /// Calls `callee(ctx, leaf)` and jumps on its answer.
    fn call_leaf(&mut self, callee: FuncRef, id: u32, yes: Block, no: Block) {
        let leaf = self.b.ins().iconst(types::I32, i64::from(id));
        let call = self.b.ins().call(callee, &[self.ctx, leaf]);
        let held = self.b.inst_results(call)[0];
        self.b.ins().brif(held, yes, &[], no, &[]);
    }
}
