#Requires -Version 5.1
<#
.SYNOPSIS
    Installs claude-guard for the current Windows user: venv, package, `claude` shim, PATH entry, reap task.

.DESCRIPTION
    1. Creates (or reuses) a virtual environment in %LOCALAPPDATA%\claude-guard\venv with Python 3.10 or later.
    2. pip-installs claude-guard from this repository folder into it (again on every run, so a pull is picked up).
    3. Runs `claude-guard install --dir <ShimDir>`, which copies pip's claude-guard-shim.exe launcher to
       <ShimDir>\claude.exe: an executable, never a .cmd, so cmd.exe never stands between a caller and the guard.
    4. Puts <ShimDir> first on the user's PATH (registry, kept as REG_EXPAND_SZ), so `claude` finds the shim
       before npm's claude.cmd or the native installer's claude.exe.
    5. Registers the scheduled task \claude-guard-reap from claude-guard-reap.xml: `claude-guard reap` every
       5 minutes while the user is logged on.

    Safe to run again: every step checks what is there first. No prompts; stops at the first error.

.PARAMETER Python
    The Python to create the venv with (a path or a command). Default: the `py -3` launcher, else `python`.

.PARAMETER ShimDir
    Folder for the `claude` shim. Default: %LOCALAPPDATA%\claude-guard\bin.

.PARAMETER NoPath
    Leave the user's PATH alone (put ShimDir ahead of the real claude yourself).

.PARAMETER NoTask
    Do not register the scheduled reap task.

.PARAMETER Uninstall
    Undo all of the above: remove the task, the shim (`claude-guard uninstall` puts back a claude it moved
    aside), the PATH entry and the venv. Settings and state under %LOCALAPPDATA%\claude-guard stay.

.EXAMPLE
    powershell -NoProfile -ExecutionPolicy Bypass -File windows\install.ps1
#>
[CmdletBinding()]
param(
    [string]$Python = '',
    [string]$ShimDir = '',
    [switch]$NoPath,
    [switch]$NoTask,
    [switch]$Uninstall
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$TaskName = 'claude-guard-reap'
$Repo = Split-Path -Parent $PSScriptRoot
$Root = Join-Path $env:LOCALAPPDATA 'claude-guard'
$Venv = Join-Path $Root 'venv'
$Scripts = Join-Path $Venv 'Scripts'
$VenvPython = Join-Path $Scripts 'python.exe'
if (-not $ShimDir) { $ShimDir = Join-Path $Root 'bin' }

function Say([string]$Text) { Write-Host "claude-guard: $Text" }

function Invoke-Native {
    # Runs a program and stops on a non-zero exit status (native programs do not raise PowerShell errors).
    param([string]$Program, [string[]]$Arguments)
    & $Program @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "'$Program $($Arguments -join ' ')' failed with exit status $LASTEXITCODE"
    }
}

function Test-Python([string[]]$Command) {
    # True when the command runs a Python 3.10 or later. The Microsoft Store's python.exe stub exits non-zero.
    $exe, $rest = $Command
    # Windows PowerShell turns a native program's redirected stderr into errors, fatal under 'Stop'.
    $ErrorActionPreference = 'Continue'
    try {
        & $exe @rest -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>$null | Out-Null
        return $LASTEXITCODE -eq 0
    } catch {
        return $false
    }
}

function Find-Python {
    if ($Python) {
        if (-not (Test-Python @($Python))) { throw "$Python is not a Python 3.10 or later" }
        return , @($Python)
    }
    foreach ($candidate in @(@('py', '-3'), @('python'))) {
        if ((Get-Command $candidate[0] -ErrorAction SilentlyContinue) -and (Test-Python $candidate)) {
            return , $candidate
        }
    }
    throw 'no Python 3.10 or later found; install one (winget install Python.Python.3.12) or pass -Python'
}

function Get-UserPath {
    # The raw value, with %VARIABLES% unexpanded, so writing it back changes nothing but our entry.
    $key = [Microsoft.Win32.Registry]::CurrentUser.OpenSubKey('Environment')
    try {
        return [string]$key.GetValue('Path', '', [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
    } finally {
        $key.Close()
    }
}

function Set-UserPath([string]$Value) {
    $key = [Microsoft.Win32.Registry]::CurrentUser.OpenSubKey('Environment', $true)
    try {
        $key.SetValue('Path', $Value, [Microsoft.Win32.RegistryValueKind]::ExpandString)
    } finally {
        $key.Close()
    }
    # Tell Explorer, so terminals opened from now on see the new PATH without a logoff.
    if (-not ('ClaudeGuard.Broadcast' -as [type])) {
        Add-Type -Namespace ClaudeGuard -Name Broadcast -MemberDefinition @'
[DllImport("user32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
public static extern IntPtr SendMessageTimeout(IntPtr hWnd, uint Msg, UIntPtr wParam, string lParam,
    uint fuFlags, uint uTimeout, out UIntPtr lpdwResult);
'@
    }
    $result = [UIntPtr]::Zero
    [void][ClaudeGuard.Broadcast]::SendMessageTimeout([IntPtr]0xffff, 0x1A, [UIntPtr]::Zero, 'Environment', 2, 5000,
        [ref]$result)
}

function Split-PathList([string]$Value) {
    # Callers wrap the result in @(): PowerShell unrolls a returned array, and one entry would come back bare.
    return $Value -split ';' | Where-Object { $_ -ne '' }
}

function Test-SameFolder([string]$A, [string]$B) {
    $expanded = [Environment]::ExpandEnvironmentVariables($A).Trim('"').TrimEnd('\')
    return [string]::Equals($expanded, $B.TrimEnd('\'), [StringComparison]::OrdinalIgnoreCase)
}

function Add-ShimToPath {
    $entries = @(Split-PathList (Get-UserPath))
    $others = @($entries | Where-Object { -not (Test-SameFolder $_ $ShimDir) })
    if ($entries.Count -gt 0 -and (Test-SameFolder $entries[0] $ShimDir) -and $others.Count -eq $entries.Count - 1) {
        Say "$ShimDir is already first on your PATH"
    } else {
        Set-UserPath ((@($ShimDir) + $others) -join ';')
        Say "put $ShimDir first on your user PATH (open a new terminal to use it)"
    }
    # This session too, so the check below sees what a new terminal will see.
    $env:Path = (@($ShimDir) + @(Split-PathList $env:Path | Where-Object { -not (Test-SameFolder $_ $ShimDir) })) -join ';'
    $first = Get-Command claude -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($first -and -not (Test-SameFolder (Split-Path -Parent $first.Source) $ShimDir)) {
        Write-Warning ("$($first.Source) comes before the shim: it is in the system PATH, which Windows puts " +
            "ahead of the user PATH. Move it, or add $ShimDir to the front of the system PATH (needs admin).")
    }
}

function Remove-ShimFromPath {
    $entries = @(Split-PathList (Get-UserPath))
    $others = @($entries | Where-Object { -not (Test-SameFolder $_ $ShimDir) })
    if ($others.Count -ne $entries.Count) {
        Set-UserPath ($others -join ';')
        Say "removed $ShimDir from your user PATH"
    }
}

function Register-ReapTask {
    $pythonw = Join-Path $Scripts 'pythonw.exe'
    if (-not (Test-Path -LiteralPath $pythonw)) { throw "$pythonw not found; the venv is incomplete" }
    $sid = [Security.Principal.WindowsIdentity]::GetCurrent().User.Value
    $xml = Get-Content -Raw -Encoding UTF8 -LiteralPath (Join-Path $PSScriptRoot 'claude-guard-reap.xml')
    # The template's comments are for people; Task Scheduler gets the definition alone.
    $xml = $xml -replace '(?s)<!--.*?-->', ''
    $xml = $xml.Replace('{{USER_SID}}', [Security.SecurityElement]::Escape($sid))
    $xml = $xml.Replace('{{PYTHONW}}', [Security.SecurityElement]::Escape($pythonw))
    # -Force replaces an earlier registration, so a new venv path or definition takes effect.
    Register-ScheduledTask -TaskName $TaskName -TaskPath '\' -Xml $xml -Force | Out-Null
    Say "scheduled task \$TaskName runs 'claude-guard reap' every 5 minutes"
}

if ($Uninstall) {
    if (Get-ScheduledTask -TaskName $TaskName -TaskPath '\' -ErrorAction SilentlyContinue) {
        Unregister-ScheduledTask -TaskName $TaskName -TaskPath '\' -Confirm:$false
        Say "removed scheduled task \$TaskName"
    }
    $cli = Join-Path $Scripts 'claude-guard.exe'
    if (Test-Path -LiteralPath $cli) {
        Invoke-Native $cli @('uninstall', '--dir', $ShimDir)
    }
    Remove-ShimFromPath
    if (Test-Path -LiteralPath $Venv) {
        Remove-Item -LiteralPath $Venv -Recurse -Force
        Say "removed $Venv"
    }
    Say 'uninstalled'
    return
}

if (-not (Test-Path -LiteralPath (Join-Path $Repo 'pyproject.toml'))) {
    throw "$Repo does not look like the claude-guard repository (no pyproject.toml); run the script from its clone"
}

# 1. The venv: reused when its interpreter still runs (a Python upgrade or removal breaks it; then rebuilt).
if ((Test-Path -LiteralPath $VenvPython) -and -not (Test-Python @($VenvPython))) {
    Say "the venv's Python no longer runs; rebuilding $Venv"
    Remove-Item -LiteralPath $Venv -Recurse -Force
}
if (-not (Test-Path -LiteralPath $VenvPython)) {
    $base = Find-Python
    $baseExe, $baseArgs = $base
    Say "creating $Venv with $($base -join ' ')"
    New-Item -ItemType Directory -Force -Path $Root | Out-Null
    Invoke-Native $baseExe (@($baseArgs | Where-Object { $_ }) + @('-m', 'venv', $Venv))
}

# 2. The package, from this folder.
Say "installing claude-guard from $Repo"
Invoke-Native $VenvPython @('-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input',
    '--upgrade', $Repo)
if (-not (Test-Path -LiteralPath (Join-Path $Scripts 'claude-guard-shim.exe'))) {
    throw "pip did not create claude-guard-shim.exe in $Scripts"
}

# 3. The shim.
Invoke-Native (Join-Path $Scripts 'claude-guard.exe') @('install', '--dir', $ShimDir)

# 4. PATH.
if (-not $NoPath) { Add-ShimToPath }

# 5. The reap task.
if (-not $NoTask) { Register-ReapTask }

Say 'done. Open a new terminal; `claude` now runs through the guard (`claude-guard doctor` checks the setup).'
